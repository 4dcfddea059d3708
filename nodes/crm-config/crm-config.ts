/**
 * crm-config: where the Payamgostar CRM is and how to log in. One CRM client per config node,
 * shared by every node that uses it; a redeploy closes it (no timers or sockets left).
 */
import { CrmClient } from '../../lib/crm/client';
import type { NodeAPI } from '../shared/red';
import { clientHolder, ClientHolder, registerTestEndpoint } from '../shared/config-support';
import { CrmConfigDef, CrmConfigNode, crmClientOptions } from './options';
import { createNode, migrationSettings } from '../shared/saved-settings';

export = function (RED: NodeAPI) {
  function CrmConfig(this: CrmConfigNode & { holder: ClientHolder<CrmClient> }, def: CrmConfigDef) {
    def = createNode(RED, this, 'crm-config', def);
    this.baseUrl = def.baseUrl;
    const holder = clientHolder((onRetry) => new CrmClient({ ...crmClientOptions(def, this.credentials ?? {}), onRetry }));
    this.client = () => holder.get();
    this.connectionState = () => holder.peek()?.connectionState();
    this.onRetry = (l) => holder.onRetry(l);
    this.on('close', (_removed: boolean, done: () => void) => {
      holder.close();
      done();
    });
  }

  RED.nodes.registerType('crm-config', CrmConfig, {
    settings: migrationSettings('crm-config'),
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });

  registerTestEndpoint(RED, 'crm-config', 'CRM', async (v) => {
    const client = new CrmClient({ ...crmClientOptions(v, v), retries: 0 });
    try {
      const started = Date.now();
      await client.login();
      const page = await client.searchIdentities({ pageSize: 1 }).next();
      const ms = Date.now() - started;
      return {
        ok: true,
        message: `Logged in to ${client.http.baseUrl} as ${v.username} and read identities (${ms} ms).`,
        details: { user: v.username, identitiesVisible: Array.isArray(page.value) ? page.value.length > 0 : false },
      };
    } finally {
      client.close();
    }
  });
};
