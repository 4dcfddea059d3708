/** The end-to-end harness moved to testkit/ (shared with scripts/ and bench/, issue #13); tests keep importing it from here. */
export * from '../../testkit/e2e';
