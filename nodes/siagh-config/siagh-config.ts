/**
 * siagh-config: where Siagh is and how to log in. One Siagh client (one session, one contact
 * index) per config node, shared by every node that uses it; a redeploy closes it.
 */
import { SiaghClient } from '../../lib/siagh/client';
import type { NodeAPI } from '../shared/red';
import { clientHolder, ClientHolder, registerTestEndpoint } from '../shared/config-support';
import { SiaghConfigDef, SiaghConfigNode, siaghClientOptions } from './options';
import { createNode, migrationSettings } from '../shared/saved-settings';

export = function (RED: NodeAPI) {
  function SiaghConfig(this: SiaghConfigNode & { holder: ClientHolder<SiaghClient> }, def: SiaghConfigDef) {
    def = createNode(RED, this, 'siagh-config', def);
    this.baseUrl = def.baseUrl;
    const holder = clientHolder((onRetry) => new SiaghClient({ ...siaghClientOptions(def, this.credentials ?? {}), onRetry }));
    this.client = () => holder.get();
    this.connectionState = () => holder.peek()?.connectionState();
    this.onRetry = (l) => holder.onRetry(l);
    this.on('close', (_removed: boolean, done: () => void) => {
      holder.close();
      done();
    });
  }

  RED.nodes.registerType('siagh-config', SiaghConfig, {
    settings: migrationSettings('siagh-config'),
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });

  registerTestEndpoint(RED, 'siagh-config', 'Siagh', async (v) => {
    const client = new SiaghClient({ ...siaghClientOptions(v, v), retries: 0 });
    try {
      const info = await client.login();
      return {
        ok: true,
        message: `Logged in to ${client.http.baseUrl} as ${info.userName} · branch ${info.branchName} · fiscal year ${info.fiscalYear}.`,
        details: { user: info.userName, branch: info.branchName, fiscalYear: info.fiscalYear },
      };
    } finally {
      client.close();
    }
  });
};
