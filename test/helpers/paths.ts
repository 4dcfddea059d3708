/**
 * Where the tests find the repository and the compiled code, wherever in test/ a file sits:
 * the package root is the nearest folder above this file (dist/test/helpers in a build) with a
 * package.json; the compiled output is the folder this file was built into (dist/ by default).
 */
import fs from 'node:fs';
import path from 'node:path';

function findRoot(): string {
  for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
  }
  throw new Error(`no package.json above ${__dirname}`);
}

/** The package root: package.json, flows/, examples/. */
export const REPO_ROOT = findRoot();
/** The compiled output (holds lib/, nodes/, test/). */
export const BUILD_ROOT = path.resolve(__dirname, '..', '..');
