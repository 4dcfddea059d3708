/**
 * siagh-import: the initial import, Siagh → CRM, started by any input message (a manual inject).
 * Thin: reads its settings, opens the mapping store of its data store (file or PostgreSQL), runs
 * lib/sync/importer.ts, shows the progress and sends one report message. A message that arrives while an import runs is dropped
 * with a warning (no second run).
 */
import path from 'node:path';
import { SyncError } from '../../lib/errors';
import type { MappingBackend } from '../../lib/store/mapping-backend';
import { fieldSettingsFromConfig, type FieldSettingsConfig, importMapOptionsOf } from '../../lib/sync/field-settings';
import { ImportOptions, ImportProgress, ImportReport, reportSummary, runImport } from '../../lib/sync/importer';
import type { CrmConfigNode } from '../crm-config/options';
import type { SiaghConfigNode } from '../siagh-config/options';
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../shared/red';
import { MappingHandle, openMappingFor, reportsDirFor, StoreOpeningStopped, storeProblemText, watchStore } from '../shared/store-ref';
import { fail, num, updateTrace } from '../shared/support';
import { createNode, migrationSettings } from '../shared/saved-settings';

/** The shared field settings (lib/sync/field-settings.ts) are the same properties as siagh-upsert's. */
interface SiaghImportDef extends NodeDef, FieldSettingsConfig {
  siagh: string;
  crm: string;
  /** The sync-store config node (mapping file and report folder). */
  store?: string;
  /** Flows saved before sync-store: the mapping file itself. */
  file?: string;
  reportDir?: string;
  concurrency?: string | number;
  dryRun?: boolean;
  categories?: string;
}

/** Above this many records the message carries the summary only; the file has them all. */
const MAX_RECORDS_IN_MSG = 1000;
/** How long a redeploy waits for a running import to wind down before closing the store. */
const CLOSE_WAIT_MS = 10_000;

function importOptions(def: SiaghImportDef): Pick<ImportOptions, 'concurrency' | 'scheme' | 'categories' | 'phoneTypeLabels' | 'genderLabels' | 'contactMap'> {
  const keys = (def.categories ?? '').split(/[,،\n]/).map((k) => k.trim()).filter(Boolean);
  return {
    concurrency: Math.min(32, Math.round(num(def.concurrency, 4, 1))),
    // Built as siagh-upsert builds its contact options, so the checksums stored here are the ones
    // the CRM's echo webhooks compute there (nothing is written back to Siagh).
    ...importMapOptionsOf(fieldSettingsFromConfig(def)),
    categories: (keys.length ? keys : ['syaghcontact']).map((key) => ({ key })),
  };
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[:.]/g, '-');
}

function endStatus(r: ImportReport): { fill: 'green' | 'yellow' | 'red'; shape: 'dot'; text: string } {
  const c = r.counts;
  const text = r.dryRun
    ? `plan: create ${c.plannedCreate} · link ${c.plannedLink} · skip ${c.skipped}` + (c.failed ? ` · ${c.failed} failed` : '')
    : `created ${c.created} · linked ${c.linked} · skipped ${c.skipped} · failed ${c.failed}`;
  return { fill: r.stoppedBy ? 'red' : c.failed ? 'yellow' : 'green', shape: 'dot', text: r.stoppedBy ? `stopped (${r.stoppedBy.code}) · ${text}` : text };
}

export = function (RED: NodeAPI) {
  function SiaghImport(this: Node, def: SiaghImportDef) {
    def = createNode(RED, this, 'siagh-import', def);
    const node = this;
    const siaghCfg = RED.nodes.getNode(def.siagh) as SiaghConfigNode | null;
    const crmCfg = RED.nodes.getNode(def.crm) as CrmConfigNode | null;

    let reportDir = '';
    let options: ReturnType<typeof importOptions> | undefined;
    let handle: Promise<MappingHandle>;
    // A PostgreSQL store not reachable yet is tried again until it opens (store-ref's keepOpening).
    const watch = watchStore(node, 'siagh-import');
    try {
      reportDir = reportsDirFor(RED, def);
      options = importOptions(def);
      handle = openMappingFor(RED, def, watch);
    } catch (e) {
      handle = Promise.reject(e);
    }
    // The mapping store of the data store: its folder's file, or PostgreSQL (shared by every instance).
    const opening: Promise<MappingBackend> = handle.then((h) => h.backend);
    opening.then(
      async (s) => {
        if (!siaghCfg || !crmCfg) node.status({ fill: 'red', shape: 'dot', text: !siaghCfg ? 'no Siagh config' : 'no CRM config' });
        else node.status({ fill: 'grey', shape: 'ring', text: `ready · ${(await s.stats()).byType.contact ?? 0} contacts mapped` });
      },
      (e) => {
        if (e instanceof StoreOpeningStopped) return;
        const pg = e?.cause?.code || /PostgreSQL/.test(String(e?.message));
        node.status({ fill: 'red', shape: 'dot', text: e?.code === 'STORE_LOCKED' ? 'file locked' : e?.code === 'CONFIG' ? 'config error' : pg ? storeProblemText(e) : 'store error' });
      },
    ).catch(() => node.status({ fill: 'red', shape: 'dot', text: 'store error' }));

    let running: Promise<void> | undefined;
    let abort: AbortController | undefined;

    node.on('input', (msg: NodeMessage, send, done) => {
      if (running) {
        node.warn('An import is already running; this message was dropped. Wait for its report before starting another.');
        done();
        return;
      }
      const dryRun = msg.dryRun === true || def.dryRun === true;
      const secrets = [siaghCfg?.credentials?.password, crmCfg?.credentials?.password];
      const ac = (abort = new AbortController());
      running = (async () => {
        try {
          if (!siaghCfg) throw new SyncError('CONFIG', 'siagh-import has no Siagh config node. Open it and choose one.');
          if (!crmCfg) throw new SyncError('CONFIG', 'siagh-import has no CRM config node. Open it and choose one.');
          const store = await opening;
          node.status({ fill: 'blue', shape: 'ring', text: dryRun ? 'reading Siagh and CRM (dry run)…' : 'reading Siagh and CRM…' });
          let last = 0;
          const onProgress = (p: ImportProgress) => {
            const now = Date.now();
            if (now - last < 250 && p.done < p.total) return;
            last = now;
            node.status({ fill: 'blue', shape: 'ring', text: `${p.done}/${p.total}` + (dryRun ? ' (dry run)' : '') });
          };
          const reportFile = path.join(reportDir, `import-${stamp(Date.now())}${dryRun ? '-dry-run' : ''}.json`);
          const report = await runImport(
            { siagh: siaghCfg.client(), crm: crmCfg.client(), store },
            { ...options, dryRun, onProgress, signal: ac.signal, reportFile, secrets },
          );
          msg.payload = report.records.length > MAX_RECORDS_IN_MSG ? reportSummary(report) : report;
          msg.reportFile = report.reportFile;
          updateTrace(msg, { trigger: 'import', entity: 'contact', step: 'siagh-import', warnings: report.warnings });
          node.status(endStatus(report));
          send(msg);
          if (report.stoppedBy) done(new SyncError(report.stoppedBy.code as SyncError['code'], report.stoppedBy.message));
          else done();
        } catch (e) {
          fail(node, msg, e, done, secrets);
        }
      })().finally(() => {
        running = undefined;
        abort = undefined;
      });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      watch.stop();
      abort?.abort();
      const wait = running
        ? Promise.race([running.catch(() => undefined), new Promise<void>((r) => setTimeout(r, CLOSE_WAIT_MS).unref())])
        : Promise.resolve();
      wait
        .then(() => handle.then((h) => h.release(), () => undefined))
        .then(
          () => done(),
          () => done(),
        );
    });
  }
  RED.nodes.registerType('siagh-import', SiaghImport, { settings: migrationSettings('siagh-import') });
};
