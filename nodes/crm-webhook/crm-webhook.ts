/**
 * crm-webhook: sits right after an http-in node that receives the CRM's webhooks.
 *
 * Every request gets exactly one reply on output 2 at once (for an http response node): 200
 * `{accepted: true, …}`, 400 with what is wrong, or 401 when the shared token is missing or wrong.
 * Accepted deliveries are coalesced per record (type + id) within a window and leave on output 1
 * as one clean message `{payload: {event, id, type, subtype}, sync}` — no request, no token.
 *
 * Mode 'echo' (for /webhook/crm/test) answers with what arrived, token redacted, and emits nothing.
 */
import { ReplayEvent } from '../../lib/oplog/entry';
import { SyncQueue } from '../../lib/queue/sync-queue';
import { checkToken, isPlainObject, parseWebhook, redactTokenParam, TokenVerdict, WebhookFields, WebhookType } from '../../lib/sync/webhook';
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../shared/red';
import { storeSettings } from '../shared/store-ref';
import { redact, unresolvedEnvName, updateTrace } from '../shared/support';

interface CrmWebhookDef extends NodeDef {
  mode?: 'webhook' | 'echo';
  expect?: 'any' | 'identity' | 'quote' | 'invoice';
  /** The sync-store config node whose queue takes the accepted changes. */
  store?: string;
}

interface Creds {
  token?: string;
}

/** The part of an http-in request this node reads. */
interface ReqLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  query?: unknown;
  headers?: Record<string, unknown>;
}

const EXPECT: Record<string, WebhookType> = { identity: 'Identity', quote: 'Quote', invoice: 'Invoice' };
const WARN_EVERY_MS = 60_000;
const ECHO_BODY_MAX = 10_000;
const SECRET_HEADERS = /^(authorization|proxy-authorization|cookie|x-api-key|x-webhook-token)$/i;

/** Environment variables whose absence was already reported (once per process, not per node). */
const warnedUnset = new Set<string>();

function isEmptyBody(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (isPlainObject(v) && Object.keys(v).length === 0);
}

export = function (RED: NodeAPI) {
  function CrmWebhook(this: Node<Creds>, def: CrmWebhookDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const mode = def.mode === 'echo' ? 'echo' : 'webhook';
    const expect: WebhookType | 'any' = EXPECT[String(def.expect ?? '').toLowerCase()] ?? 'any';

    // The token: empty, or a ${NAME} Node-RED could not resolve (NAME set nowhere), means none is required.
    const rawToken = typeof node.credentials?.token === 'string' ? node.credentials.token.trim() : '';
    const unsetName = unresolvedEnvName(rawToken);
    const token = rawToken && !unsetName ? rawToken : undefined;
    if (unsetName && !warnedUnset.has(unsetName)) {
      warnedUnset.add(unsetName);
      node.warn(`The webhook token is \${${unsetName}}, but ${unsetName} is not set: CRM webhooks are accepted without a token. Set ${unsetName} for the Node-RED process and restart to require ?token= on every request.`);
    }
    const secrets = [token];

    const counts = { accepted: 0, rejected: 0, echoed: 0 };
    let lastRejected = false;
    let lastWarnAt = 0;
    let suppressed = 0;

    function showStatus(): void {
      if (mode === 'echo') {
        node.status({ fill: 'grey', shape: 'dot', text: `echo · ${counts.echoed} answered` });
        return;
      }
      let text = `${counts.accepted} accepted`;
      if (counts.rejected) text += ` · ${counts.rejected} rejected`;
      node.status({ fill: lastRejected ? 'yellow' : 'green', shape: 'dot', text });
    }

    node.status(mode === 'echo' ? { fill: 'grey', shape: 'ring', text: 'echo (test)' } : { fill: 'grey', shape: 'ring', text: token ? 'token required' : 'no token' });

    /** Exactly one reply per request, on output 2: a fresh message with the response object only. */
    function reply(msg: NodeMessage, send: (m: Array<NodeMessage | null>) => void, statusCode: number, payload: Record<string, unknown>): void {
      send([null, { _msgid: msg._msgid, res: msg.res, statusCode, payload }]);
    }

    function reject(msg: NodeMessage, send: (m: Array<NodeMessage | null>) => void, statusCode: 400 | 401, error: string, problems?: string[]): void {
      counts.rejected++;
      lastRejected = true;
      reply(msg, send, statusCode, problems && problems.length > 1 ? { accepted: false, error, problems } : { accepted: false, error });
      const now = Date.now();
      if (now - lastWarnAt >= WARN_EVERY_MS) {
        node.warn(`Rejected a CRM webhook (${statusCode}): ${redact(error, secrets)}` + (suppressed ? ` (and ${suppressed} more since the last warning)` : ''));
        lastWarnAt = now;
        suppressed = 0;
      } else {
        suppressed++;
      }
      showStatus();
    }

    function tokenError(v: TokenVerdict): string {
      return v === 'missing'
        ? 'token missing: this endpoint requires ?token=<WEBHOOK_TOKEN> in the webhook URL registered in the CRM'
        : 'token wrong: the ?token= value does not match WEBHOOK_TOKEN; correct the webhook URL registered in the CRM';
    }

    /** Copy of an object with every `token` key shown as ***, and the token's value redacted from texts. */
    function redacted(v: unknown, depth = 0): unknown {
      if (typeof v === 'string') return redactTokenParam(redact(v, secrets));
      if (depth > 6 || v === null || typeof v !== 'object') return v;
      if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
      if (Array.isArray(v)) return v.map((x) => redacted(x, depth + 1));
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = /^token$/i.test(k) ? '***' : redacted(x, depth + 1);
      return out;
    }

    function echo(msg: NodeMessage, out: (m: Array<NodeMessage | null>) => void, req: ReqLike | undefined, query: Record<string, unknown>, body: unknown, verdict: TokenVerdict, fieldsInput: unknown) {
      const headers: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(req?.headers ?? {})) headers[k] = SECRET_HEADERS.test(k) ? '***' : redacted(v);
      let shownBody: unknown = redacted(body);
      const size = shownBody === undefined ? 0 : JSON.stringify(shownBody)?.length ?? 0;
      if (size > ECHO_BODY_MAX) shownBody = { truncated: true, characters: size };
      const check = parseWebhook(fieldsInput, { expect });
      counts.echoed++;
      reply(msg, out, 200, {
        received: true,
        method: req?.method ?? null,
        url: redacted(req?.originalUrl ?? req?.url ?? null),
        query: redacted(query),
        headers,
        body: shownBody ?? null,
        token: verdict,
        check: check.ok ? { ok: true, ...check.fields } : { ok: false, error: check.error, problems: check.problems },
        at: new Date().toISOString(),
      });
      showStatus();
    }

    const queueOpening: Promise<SyncQueue> = (async () => {
      const st = storeSettings(RED, def.store);
      return SyncQueue.open(st.dir, { policy: st.policy });
    })();
    queueOpening.catch((e) => {
      node.status({ fill: 'red', shape: 'dot', text: e?.code === 'STORE_LOCKED' ? 'data folder locked' : 'queue error' });
      node.error(`crm-webhook cannot open the sync queue: ${e instanceof Error ? e.message : String(e)}`);
    });

    /** Queue the change durably, then answer 200 and tell the queue node (output 1). */
    async function accept(msg: NodeMessage, out: (m: Array<NodeMessage | null>) => void, f: WebhookFields): Promise<void> {
      try {
        const q = await queueOpening;
        const ev: ReplayEvent = { type: f.type, id: f.id, event: f.event, ...(f.subtype ? { subtype: f.subtype } : {}) };
        const r = await q.enqueue(ev, { trigger: 'webhook' });
        reply(msg, out, 200, { accepted: true, event: f.event, type: f.type, id: f.id, queued: true, merged: r.merged });
        const payload: Record<string, string> = { event: f.event, id: f.id, type: f.type };
        if (f.subtype) payload.subtype = f.subtype;
        const m: NodeMessage = { topic: `${f.type}:${f.id}`, payload, queued: true };
        updateTrace(m, { trigger: 'webhook', event: f.event, entity: f.type.toLowerCase(), crmId: f.id, step: 'crm-webhook' });
        out([m, null]);
      } catch (e) {
        // Not on disk: say so, so the CRM (or its operator) sends it again; polling also catches it.
        reply(msg, out, 503, { accepted: false, error: 'the change could not be queued (see the Node-RED log); send it again later' });
        node.error(`A CRM webhook could not be queued: ${e instanceof Error ? redact(e.message, secrets) : String(e)}`);
      }
      showStatus();
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
        if (req && method !== 'GET' && method !== 'HEAD' && isEmptyBody(msg.payload) && Object.keys(query).length) fieldsInput = query;
        const candidates = [query.token, isPlainObject(fieldsInput) ? fieldsInput.token : undefined];
        const verdict = checkToken(candidates, token);

        if (mode === 'echo') {
          echo(msg, out, req, query, method === 'GET' || method === 'HEAD' ? undefined : msg.payload, verdict, fieldsInput);
          return done();
        }
        if (verdict === 'missing' || verdict === 'wrong') {
          reject(msg, out, 401, tokenError(verdict));
          return done();
        }
        const parsed = parseWebhook(fieldsInput, { expect });
        if (!parsed.ok) {
          reject(msg, out, 400, parsed.error, parsed.problems);
          return done();
        }
        const f: WebhookFields = parsed.fields;
        counts.accepted++;
        lastRejected = false;
        // Durable intake: the CRM hears 200 only once the change is on disk in the sync queue.
        void accept(msg, out, f).then(() => done());
        return;
      } catch (e) {
        // Never leave a request unanswered (and never answer one twice).
        if (!replied) reply(msg, out, 500, { accepted: false, error: 'the webhook could not be handled; see the Node-RED log' });
        node.error(e instanceof Error ? redact(e.message, secrets) : 'crm-webhook failed');
        done();
      }
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      queueOpening.then(
        (q) => q.release(),
        () => undefined,
      ).then(() => done(), () => done());
    });
  }

  RED.nodes.registerType('crm-webhook', CrmWebhook, {
    credentials: { token: { type: 'password' } },
  });
};
