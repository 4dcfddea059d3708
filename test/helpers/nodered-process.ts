/** Moved to testkit/ (shared with scripts/ and bench/, issue #13); tests keep importing it from here. */
export * from '../../testkit/nodered-process';
