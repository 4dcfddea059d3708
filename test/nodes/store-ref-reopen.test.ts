/**
 * store-ref's keepOpening, the one place a store that could not be opened is tried again: every
 * failed try is told (the node's status), tries go on until one succeeds, and a node that closes
 * (its signal aborted) stops them: no try after the abort, and the opening rejects quietly.
 */
import assert from 'node:assert/strict';
import { keepOpening, StoreOpeningStopped } from '../../nodes/shared/store-ref';

describe('store-ref: keepOpening (a store opened again until it opens, or its node closes)', function () {
  this.timeout(20_000);

  it('tries again after each failure, tells each one, and resolves with the store once it opens', async () => {
    let tries = 0;
    const told: string[] = [];
    const ctl = new AbortController();
    const v = await keepOpening(
      async () => {
        if (++tries < 3) throw Object.assign(new Error(`refused ${tries}`), { code: 'ECONNREFUSED' });
        return 'open';
      },
      { signal: ctl.signal, onWait: (e) => told.push((e as Error).message) },
    );
    assert.equal(v, 'open');
    assert.deepEqual(told, ['refused 1', 'refused 2']);
  });

  it('a closed node stops the tries: the opening rejects with StoreOpeningStopped and open() is not called again', async () => {
    let tries = 0;
    const ctl = new AbortController();
    const opening = keepOpening(
      async () => {
        tries++;
        throw new Error('refused');
      },
      { signal: ctl.signal, onWait: () => ctl.abort() },
    );
    await assert.rejects(opening, (e: unknown) => e instanceof StoreOpeningStopped);
    const after = tries;
    await new Promise((r) => setTimeout(r, 1500)); // longer than the first pause (1 s)
    assert.equal(tries, after, 'no try after the node closed');
    assert.equal(tries, 1);
  });

  it('a caller without a signal (it could not stop the tries) gets one try and its error', async () => {
    let tries = 0;
    await assert.rejects(
      keepOpening(async () => {
        tries++;
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.equal(tries, 1);
  });
});
