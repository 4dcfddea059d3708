/**
 * crm-webhook: sits right after an http-in node that receives the CRM's webhooks.
 *
 * Every request gets exactly one reply on output 2 (for an http response node): 200
 * `{accepted: true, queued: true, …}` once the change is written to the data store's sync queue
 * (durably: a redeploy, a stop or a kill -9 loses nothing the CRM was told was accepted), 400 with
 * what is wrong, 401 when the shared token is missing or wrong, 503 when the queue cannot take it.
 * A change for a record already waiting in the queue is merged into its job. Each accepted change
 * also leaves on output 1 as `{payload: {event, id, type, subtype}, sync, queued: true}` (no
 * request, no token), for the sync-queue node, which it only wakes.
 *
 * Mode 'echo' (for /webhook/crm/test) answers with what arrived, token redacted, and emits nothing.
 */
import { DEFAULT_KEEP, describeRequest, MAX_KEEP, redactDeep, redactHeaders, RejectionLog } from '../../lib/sync/webhook-rejections';
import {
  carriesNoWebhookFields,
  checkToken,
  describeEndpoint,
  DISABLED_REPLY,
  ExtraFields,
  isPlainObject,
  parseWebhook,
  RejectionReason,
  resolveToken,
  tokenValues,
  TokenVerdict,
  WebhookFields,
  webhooksDisabled,
  WebhookType,
} from '../../lib/sync/webhook';
import { ReplayEvent } from '../../lib/oplog/entry';
import { hideSecrets } from '../../lib/oplog/scrub';
import type { QueueBackend } from '../../lib/queue/queue-backend';
import type { Node, NodeAPI, NodeDef, NodeMessage, Request, Response } from '../shared/red';
import { openQueueFor, StoreOpeningStopped, storeProblemText, storeSettings, watchStore } from '../shared/store-ref';
import { num, updateTrace } from '../shared/support';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface CrmWebhookDef extends NodeDef {
  mode?: 'webhook' | 'echo';
  expect?: 'any' | 'identity' | 'quote' | 'invoice';
  /** The sync-store config node whose queue takes the accepted changes. */
  store?: string;
  /** Where the token comes from when the credential is empty or an unset ${NAME} (default WEBHOOK_TOKEN). */
  tokenEnv?: string;
  /** Accept requests without a token when none is configured anywhere (default false: refuse them all). */
  allowNoToken?: boolean;
  /** Refused requests kept for the operator (default 50). */
  keepRejections?: string | number;
}

interface Creds {
  token?: string;
}

/** The part of an http-in request this node reads. */
interface ReqLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  path?: string;
  query?: unknown;
  headers?: Record<string, unknown>;
}

const EXPECT: Record<string, WebhookType> = { identity: 'Identity', quote: 'Quote', invoice: 'Invoice' };
const WARN_EVERY_MS = 60_000;
const ECHO_BODY_MAX = 10_000;

/** Environment variables whose absence was already reported (once per process, not per node). */
const warnedUnset = new Set<string>();

/** Deployed crm-webhook nodes' rejection lists, for the admin route (node id → list). */
const rejectionLogs = new Map<string, RejectionLog>();

function isEmptyBody(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (isPlainObject(v) && Object.keys(v).length === 0);
}

export = function (RED: NodeAPI) {
  function CrmWebhook(this: Node<Creds>, def: CrmWebhookDef) {
    def = createNode(RED, this, 'crm-webhook', def);
    const node = this;
    const mode = def.mode === 'echo' ? 'echo' : 'webhook';
    const expect: WebhookType | 'any' = EXPECT[String(def.expect ?? '').toLowerCase()] ?? 'any';
    const disabled = mode === 'webhook' && webhooksDisabled(process.env.ENABLE_WEBHOOKS);
    const allowNoToken = def.allowNoToken === true || def.allowNoToken === ('true' as unknown);
    const rejections = new RejectionLog(Math.min(Math.round(num(def.keepRejections, DEFAULT_KEEP, 0)), MAX_KEEP));
    rejectionLogs.set(node.id, rejections);

    // The token fails closed: the credential, else the environment (read once, at start). With none
    // anywhere, requests are accepted only when the node explicitly allows it.
    const source = resolveToken(node.credentials?.token, def.tokenEnv, process.env);
    const token = source.token;
    const open = !token && allowNoToken;
    if (!token) {
      // Open: said once per process (per variable). Refusing everything: said at every start.
      const key = `${source.unresolved ?? def.tokenEnv ?? 'WEBHOOK_TOKEN'}:open`;
      if (!open || !warnedUnset.has(key)) {
        if (open) warnedUnset.add(key);
        const envName = typeof def.tokenEnv === 'string' && def.tokenEnv.trim() ? def.tokenEnv.trim() : 'WEBHOOK_TOKEN';
        node.warn(
          open
            ? `No webhook token is configured (credential empty, ${envName} not set): CRM webhooks are accepted without a token because "accept requests without a token" is ticked. Set ${envName} for the Node-RED process and restart to require ?token= on every request.`
            : `No webhook token is configured (credential empty, ${envName} not set) and "accept requests without a token" is off: every webhook request is refused with 401. Set ${envName} (or the node's token) and restart, or tick that option.`,
        );
      }
    }
    const secrets = [token];

    const counts = { accepted: 0, rejected: 0, echoed: 0, probes: 0 };
    let lastRejected = false;
    let lastWarnAt = 0;
    let suppressed = 0;
    function baseStatus(): { fill: 'grey' | 'yellow' | 'red'; shape: 'ring'; text: string } {
      if (mode === 'echo') return { fill: 'grey', shape: 'ring', text: token ? 'echo (test) · token required' : open ? 'echo (test) · no token (open)' : 'echo (test) · no token configured: refusing' };
      if (disabled) return { fill: 'grey', shape: 'ring', text: 'disabled (ENABLE_WEBHOOKS=false)' };
      if (token) return { fill: 'grey', shape: 'ring', text: 'token required' };
      if (open) return { fill: 'yellow', shape: 'ring', text: 'no token (open)' };
      return { fill: 'red', shape: 'ring', text: 'no token configured: refusing all' };
    }

    /** The store's queue once open; `waiting` while a PostgreSQL store is being tried again. */
    let queue: QueueBackend | undefined;
    let waiting = false;

    function showStatus(): void {
      if (waiting && !queue) return; // the status says what the store waits for (watchStore)
      if (mode === 'echo') {
        node.status({ fill: 'grey', shape: 'dot', text: `echo · ${counts.echoed} answered` + (counts.rejected ? ` · ${counts.rejected} rejected` : '') });
        return;
      }
      if (disabled) {
        node.status({ fill: 'grey', shape: 'dot', text: `disabled · ${counts.rejected ? `${counts.rejected} rejected · ` : ''}nothing passed on` });
        return;
      }
      let text = `${counts.accepted} accepted`;
      if (counts.rejected) text += ` · ${counts.rejected} rejected`;
      if (open) text += ' · no token (open)';
      else if (!token) text += ' · no token configured';
      node.status({ fill: !token && !open ? 'red' : lastRejected || open ? 'yellow' : 'green', shape: 'dot', text });
    }

    node.status(baseStatus());

    /** Exactly one reply per request, on output 2: a fresh message with the response object only. */
    function reply(msg: NodeMessage, send: (m: Array<NodeMessage | null>) => void, statusCode: number, payload: Record<string, unknown>): void {
      send([null, { _msgid: msg._msgid, res: msg.res, statusCode, payload }]);
    }

    function reject(msg: NodeMessage, send: (m: Array<NodeMessage | null>) => void, req: ReqLike | undefined, statusCode: 400 | 401, reason: RejectionReason, error: string, problems?: string[]): void {
      counts.rejected++;
      lastRejected = true;
      reply(msg, send, statusCode, problems && problems.length > 1 ? { accepted: false, error, problems } : { accepted: false, error });
      rejections.add({ ...describeRequest(req, secrets), reason, status: statusCode, error: hideSecrets(error, secrets) });
      const now = Date.now();
      if (now - lastWarnAt >= WARN_EVERY_MS) {
        node.warn(`Rejected a CRM webhook (${statusCode} ${reason}): ${hideSecrets(error, secrets)}` + (suppressed ? ` (and ${suppressed} more since the last warning)` : ''));
        lastWarnAt = now;
        suppressed = 0;
      } else {
        suppressed++;
      }
      showStatus();
    }

    function tokenError(v: TokenVerdict): string {
      return v === 'wrong'
        ? 'token wrong: the ?token= value does not match WEBHOOK_TOKEN; correct the webhook URL registered in the CRM'
        : 'token missing: this endpoint requires ?token=<WEBHOOK_TOKEN> in the webhook URL registered in the CRM';
    }

    /**
     * The token check, failing closed. With no token configured and no explicit permission, every
     * request is refused; the reply says "missing" or "wrong" only, as it would with a token, so it
     * tells nothing about the configuration.
     */
    function tokenCheck(candidates: unknown[]): { ok: true; verdict: TokenVerdict } | { ok: false; verdict: TokenVerdict; reason: RejectionReason } {
      if (token) {
        const v = checkToken(candidates, token);
        return v === 'ok' ? { ok: true, verdict: v } : { ok: false, verdict: v, reason: v === 'wrong' ? 'token-wrong' : 'token-missing' };
      }
      if (open) return { ok: true, verdict: 'not-required' };
      const sent = candidates.some((c) => c !== undefined && c !== null && c !== '');
      return { ok: false, verdict: sent ? 'wrong' : 'missing', reason: 'token-not-configured' };
    }

    function echo(msg: NodeMessage, out: (m: Array<NodeMessage | null>) => void, req: ReqLike | undefined, query: Record<string, unknown>, body: unknown, verdict: TokenVerdict, fieldsInput: unknown) {
      const headers = redactHeaders(req?.headers, secrets);
      let shownBody: unknown = redactDeep(body, secrets);
      const size = shownBody === undefined ? 0 : JSON.stringify(shownBody)?.length ?? 0;
      if (size > ECHO_BODY_MAX) shownBody = { truncated: true, characters: size };
      const check = parseWebhook(fieldsInput, { expect, secrets });
      counts.echoed++;
      reply(msg, out, 200, {
        received: true,
        method: req?.method ?? null,
        url: redactDeep(req?.originalUrl ?? req?.url ?? null, secrets),
        query: redactDeep(query, secrets),
        headers,
        body: shownBody ?? null,
        token: verdict,
        check: check.ok
          ? { ok: true, ...check.fields, ...(check.extra ? { extraFields: check.extra } : {}), ...(check.notes ? { normalised: check.notes } : {}) }
          : { ok: false, error: check.error, problems: check.problems, reason: check.reason },
        at: new Date().toISOString(),
      });
      showStatus();
    }

    // The queue of the data store (not needed by the test endpoint or with webhooks disabled). A
    // PostgreSQL store not reachable yet is tried again until it opens (store-ref's keepOpening);
    // meanwhile webhooks are answered 503, so the CRM sends them again.
    const watch = mode === 'webhook' && !disabled ? watchStore(node, 'crm-webhook') : undefined;
    const queueOpening: Promise<QueueBackend> | undefined = watch
      ? (async () => {
          return openQueueFor(storeSettings(RED, def.store), {
            signal: watch.signal,
            onWait: (e) => {
              waiting = true;
              watch.onWait?.(e);
            },
          });
        })()
      : undefined;
    queueOpening?.then(
      (q) => {
        queue = q;
        if (waiting) {
          waiting = false;
          showStatus();
        }
      },
      (e) => {
        if (e instanceof StoreOpeningStopped) return;
        node.status({ fill: 'red', shape: 'dot', text: storeProblemText(e) });
        node.error(`crm-webhook cannot open the sync queue: ${e instanceof Error ? e.message : String(e)}`);
      },
    );

    /** Queue the change durably, then answer 200 and wake the sync-queue node (output 1). */
    async function accept(msg: NodeMessage, out: (m: Array<NodeMessage | null>) => void, f: WebhookFields, seen: { extraFields?: ExtraFields; extraCount?: number; normalised?: string[] }): Promise<void> {
      try {
        if (!queueOpening) throw new Error('no queue');
        // While the store is waited for, answer at once (503): the CRM sends the change again.
        if (!queue && waiting) throw new Error('the data store is not open yet (waiting for PostgreSQL)');
        const q = queue ?? (await queueOpening);
        const ev: ReplayEvent = { type: f.type, id: f.id, event: f.event, ...(f.subtype ? { subtype: f.subtype } : {}) };
        // What the intake ignored or tolerated travels with the job, to the trace and the sync log.
        const seenData: Record<string, unknown> = {};
        if (seen.extraFields) seenData.extraFields = seen.extraFields;
        if (seen.extraCount && seen.extraFields && seen.extraCount > Object.keys(seen.extraFields).length) seenData.extraCount = seen.extraCount;
        if (seen.normalised) seenData.normalised = seen.normalised;
        const r = await q.enqueue(ev, { trigger: 'webhook', data: Object.keys(seenData).length ? seenData : undefined });
        reply(msg, out, 200, { accepted: true, event: f.event, type: f.type, id: f.id, queued: true, merged: r.merged });
        const payload: Record<string, string> = { event: f.event, id: f.id, type: f.type };
        if (f.subtype) payload.subtype = f.subtype;
        const m: NodeMessage = { topic: `${f.type}:${f.id}`, payload, queued: true };
        const t = updateTrace(m, { trigger: 'webhook', event: f.event, entity: f.type.toLowerCase(), crmId: f.id, step: 'crm-webhook' });
        if (seen.extraFields) {
          t.extraFields = seen.extraFields;
          if ((seen.extraCount ?? 0) > Object.keys(seen.extraFields).length) t.extraCount = seen.extraCount;
        }
        if (seen.normalised) t.normalised = seen.normalised;
        out([m, null]);
      } catch (e) {
        // Not on disk: say so, so the CRM (or its operator) sends it again; polling also catches it.
        counts.accepted--;
        reply(msg, out, 503, { accepted: false, error: 'the change could not be queued (see the Node-RED log); send it again later' });
        // While the store is waited for, the log said so once (watchStore), not at every webhook.
        if (!(waiting && !queue)) node.error(`A CRM webhook could not be queued: ${e instanceof Error ? hideSecrets(e.message, secrets) : String(e)}`);
      }
      showStatus();
    }

    function pathOf(req: ReqLike | undefined): string {
      const u = String(req?.originalUrl ?? req?.url ?? '');
      return u.split('?')[0] || '/';
    }

    node.on('input', (msg, sendFn, done) => {
      let replied = false;
      const out = (m: Array<NodeMessage | null>) => {
        if (m[1]) replied = true;
        sendFn(m);
      };
      try {
        const req = (msg.req && typeof msg.req === 'object' ? msg.req : undefined) as ReqLike | undefined;
        const method = String(req?.method ?? '').toUpperCase();
        const query = isPlainObject(req?.query) ? req.query : {};
        // GET: msg.payload is the query. POST and others: the JSON body; a POST without a body is read from its query.
        let fieldsInput: unknown = msg.payload;
        const bodyEmpty = isEmptyBody(msg.payload);
        if (req && method !== 'GET' && method !== 'HEAD' && bodyEmpty && Object.keys(query).length) fieldsInput = query;
        const candidates = [...tokenValues(query), ...(fieldsInput !== query ? tokenValues(fieldsInput) : [])];
        const tc = tokenCheck(candidates);

        if (!tc.ok) {
          reject(msg, out, req, 401, tc.reason, tokenError(tc.verdict));
          return done();
        }
        if (mode === 'echo') {
          echo(msg, out, req, query, method === 'GET' || method === 'HEAD' ? undefined : msg.payload, tc.verdict, fieldsInput);
          return done();
        }
        if (disabled) {
          reply(msg, out, 200, { ...DISABLED_REPLY });
          return done();
        }
        // A probe (nothing but perhaps a token or a cache-buster, no body): say what this endpoint expects.
        // (A GET's payload is its query, so only the query counts there; other methods need an empty body too.)
        if (req && carriesNoWebhookFields(query) && (method === 'GET' || method === 'HEAD' || bodyEmpty)) {
          counts.probes++;
          reply(msg, out, 200, describeEndpoint(pathOf(req), expect, Boolean(token)));
          return done();
        }
        const parsed = parseWebhook(fieldsInput, { expect, secrets });
        if (!parsed.ok) {
          reject(msg, out, req, 400, parsed.reason, parsed.error, parsed.problems);
          return done();
        }
        counts.accepted++;
        lastRejected = false;
        // Durable intake: the CRM hears 200 only once the change is on disk in the sync queue.
        replied = true;
        void accept(msg, out, parsed.fields, { extraFields: parsed.extra, extraCount: parsed.extraCount, normalised: parsed.notes }).then(() => done());
      } catch (e) {
        // Never leave a request unanswered (and never answer one twice).
        if (!replied) reply(msg, out, 500, { accepted: false, error: 'the webhook could not be handled; see the Node-RED log' });
        node.error(e instanceof Error ? hideSecrets(e.message, secrets) : 'crm-webhook failed');
        done();
      }
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      if (rejectionLogs.get(node.id) === rejections) rejectionLogs.delete(node.id);
      if (!queueOpening) return done();
      watch?.stop();
      queueOpening.then(
        (q) => q.release(),
        () => undefined,
      ).then(() => done(), () => done());
    });
  }

  RED.nodes.registerType('crm-webhook', CrmWebhook, {
    settings: migrationSettings('crm-webhook'),
    credentials: { token: { type: 'password' } },
  });

  // The operator's view of refused requests (redacted; the token never), for the edit dialog.
  RED.httpAdmin.get('/siagh-sync/webhook-rejections/:id', RED.auth.needsPermission('crm-webhook.read'), (req: Request, res: Response) => {
    const list = rejectionLogs.get(String(req.params.id ?? ''));
    if (!list) {
      res.status(404).json({ ok: false, code: 'NOT_DEPLOYED', message: 'This crm-webhook node is not deployed (deploy it first).' });
      return;
    }
    res.json({ ok: true, ...list.snapshot() });
  });
};
