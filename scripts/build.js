#!/usr/bin/env node
// Build: clean dist/, compile TypeScript (tsc, strict), then copy each node's editor files
// (.html, locales/, icons/) beside its compiled .js, where Node-RED's loader looks for them.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const root = path.resolve(__dirname, '..');
// BUILD_OUT lets several builds run side by side (default dist/).
const dist = path.resolve(root, process.env.BUILD_OUT || 'dist');
fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json'), '--outDir', dist], {
  stdio: 'inherit',
  cwd: root,
});
const nodesDir = path.join(root, 'nodes');
for (const name of fs.readdirSync(nodesDir)) {
  const src = path.join(nodesDir, name);
  if (!fs.statSync(src).isDirectory()) continue;
  const out = path.join(dist, 'nodes', name);
  fs.mkdirSync(out, { recursive: true });
  for (const entry of fs.readdirSync(src)) {
    if (entry.endsWith('.ts')) continue;
    fs.cpSync(path.join(src, entry), path.join(out, entry), { recursive: true });
  }
}

// examples/pipelines/ is produced from flows/ (the one source of the shipped flows), so that
// Import > Examples offers them: here for dev runs and tests, and by prepack for the tarball.
// Not in git (.gitignore). Each file is written whole (temp + rename) and only when it differs,
// so builds running side by side (BUILD_OUT) never leave a half-written copy.
const flowsDir = path.join(root, 'flows');
const pipelinesDir = path.join(root, 'examples', 'pipelines');
fs.mkdirSync(pipelinesDir, { recursive: true });
const shipped = fs.readdirSync(flowsDir).filter((f) => f.endsWith('.json'));
for (const f of shipped) {
  const text = fs.readFileSync(path.join(flowsDir, f));
  const dest = path.join(pipelinesDir, f);
  if (fs.existsSync(dest) && fs.readFileSync(dest).equals(text)) continue;
  const tmp = `${dest}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, dest);
}
for (const f of fs.readdirSync(pipelinesDir)) {
  if (f.endsWith('.json') && !shipped.includes(f)) fs.rmSync(path.join(pipelinesDir, f), { force: true });
}
