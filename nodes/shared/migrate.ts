/**
 * Saved flows keep working: every node's settings carry a `version`, and each node type has a list
 * of migration steps, one per version, that turn settings saved by an older release into the current
 * ones with the same meaning. The runtime applies them when a node is constructed, before its options
 * are parsed (`nodes/shared/saved-settings.ts`); the editor applies the same steps when an old node's
 * dialog opens (`resources/migrate.js`, the table reaches it as the exported node setting
 * `<type>Migrations`). A node without `version` was saved before versions existed: version 0, it gets
 * every step.
 *
 * Steps are data, not code, so the editor and the runtime apply exactly the same ones. Pure functions:
 * no Node-RED, no files.
 *
 * To add or rename a setting: add the step `{from: N, to: N + 1, …}` to its type below, raise its
 * `current` to N + 1, set `version: { value: N + 1 }` in the node's .html defaults, and add a case to
 * test/nodes/migrate.test.ts (ARCHITECTURE.md, "a setting").
 */
import { z } from 'zod';

/** A setting's value as the editor saves it. */
export type SettingValue = string | number | boolean;

export interface MigrationStep {
  /** The version this step reads … */
  from: number;
  /** … and the one it writes (always from + 1). */
  to: number;
  /** What changed in that release and how the step keeps the meaning, for maintainers. */
  why: string;
  /** Settings renamed, old name → new name: the value moves (a value already under the new name wins). */
  rename?: Record<string, string>;
  /** Settings that no longer exist: dropped. */
  remove?: string[];
  /** Settings added: a node saved without one gets this value, the one that keeps its old behaviour. */
  add?: Record<string, SettingValue>;
  /** Values written out that mean the same, per setting: `[saved, now]` pairs. */
  replace?: Record<string, Array<[SettingValue, SettingValue]>>;
}

export interface NodeMigrations {
  /** The version this release saves (the `version` default in the node's .html). */
  current: number;
  /** From 0 up to `current`, in order. */
  steps: MigrationStep[];
}

export const MIGRATED_TYPES = [
  'crm-config',
  'siagh-config',
  'sync-store',
  'crm-fetch',
  'crm-webhook',
  'crm-poll',
  'sync-queue',
  'siagh-upsert',
  'sync-mapping',
  'siagh-import',
  'sync-log',
] as const;
export type MigratedType = (typeof MIGRATED_TYPES)[number];

const UNCHANGED = 'Versions start: the settings are the same as in every earlier release.';

/** The shared field settings siagh-upsert and siagh-import gained together (lib/sync/field-settings.ts defaults). */
const FIELD_SETTINGS_ADDED: Record<string, SettingValue> = {
  mobileLabel: 'موبایل',
  officeLabel: 'محل کار',
  genderValues: 'Female, Male',
  mobileTypes: '',
  officeTypes: '',
  addressNames: true,
  economicCodeKey: '',
  tmpidKey: 'gn_web_users.tmpid',
  overrides: '',
};

/**
 * The migrations of every node type. Version 1 is the first release that saves `version`; the
 * 0 → 1 steps carry what changed in the settings before (git log -p nodes/<type>/<type>.html).
 * Settings the runtime reads the same whether missing or set to their default are written out too,
 * so an old node opened in the editor shows (and saves) what it does, not an empty field or an
 * unticked box.
 */
export const MIGRATIONS: Record<MigratedType, NodeMigrations> = {
  'crm-config': { current: 1, steps: [{ from: 0, to: 1, why: UNCHANGED }] },
  'siagh-config': { current: 1, steps: [{ from: 0, to: 1, why: UNCHANGED }] },
  'sync-store': {
    current: 1,
    steps: [
      {
        from: 0,
        to: 1,
        why:
          'First retry and longest wait were added with defaults 5 and 600, then made blank (= RETRY_BASE_SECONDS / ' +
          'RETRY_MAX_DELAY_SECONDS, else 5 s / 600 s); a node saved with 5 / 600 keeps them as set. Nothing to change.',
      },
    ],
  },
  'crm-fetch': { current: 1, steps: [{ from: 0, to: 1, why: UNCHANGED }] },
  'crm-webhook': {
    current: 1,
    steps: [
      {
        from: 0,
        to: 1,
        why:
          'coalesceMs (the wait to merge repeated webhooks) went when changes started to go to the sync queue, which ' +
          'merges a change for a record already waiting; tokenEnv, allowNoToken, keepRejections and store were added ' +
          '(a node saved without store uses the default data folder, as before). A node saved without a token used to ' +
          'accept every request; it now refuses them unless WEBHOOK_TOKEN is set or "accept without a token" is ticked: ' +
          'that fix is deliberately not undone here.',
        remove: ['coalesceMs'],
        add: { tokenEnv: 'WEBHOOK_TOKEN', allowNoToken: false, keepRejections: 50 },
      },
    ],
  },
  'crm-poll': {
    current: 1,
    steps: [
      {
        from: 0,
        to: 1,
        why:
          'The types setting was added when polling learned quotes and invoices; a node saved before it polled ' +
          'identities only, and keeps doing so (tick quotes and invoices in its dialog to poll them too). ' +
          'store was added; without it the node keeps its own mapping file setting (store-ref.ts).',
        add: { types: 'identity' },
      },
    ],
  },
  'sync-queue': { current: 1, steps: [{ from: 0, to: 1, why: UNCHANGED }] },
  'siagh-upsert': {
    current: 1,
    steps: [
      {
        from: 0,
        to: 1,
        why:
          'Sales centre and intermediary were saved empty at first; Siagh refuses an empty value, and the runtime ' +
          'has read empty as "auto" and 31 since: written out. The shared field settings and the VAT, discount and ' +
          'document-discount settings were added with the defaults a missing value already meant. crm and writeBack ' +
          'were added: left out, so a node without a CRM writes nothing back, as before, and says nothing about it.',
        replace: { salesCentre: [['', 'auto']], intermediary: [['', '31']] },
        add: {
          ...FIELD_SETTINGS_ADDED,
          vatPercentKey: '',
          vatAmountKey: '',
          rowVatKey: '',
          discountKey: '',
          discountPercentKey: '',
          documentDiscount: 'none',
        },
      },
    ],
  },
  'sync-mapping': {
    current: 1,
    steps: [
      {
        from: 0,
        to: 1,
        why:
          'store was added (without it the node keeps its own mapping file setting, store-ref.ts); crm, siagh and the ' +
          'customer-number scheme were added for the rebuild operation, with the defaults a missing value means.',
        add: { cnPrefix: '100-', cnOffset: 1000 },
      },
    ],
  },
  'siagh-import': {
    current: 1,
    steps: [
      {
        from: 0,
        to: 1,
        why:
          'The shared field settings were added with the defaults a missing value already meant; store was added ' +
          '(without it the node keeps its own mapping file and report folder settings, store-ref.ts).',
        add: { ...FIELD_SETTINGS_ADDED },
      },
    ],
  },
  'sync-log': {
    current: 1,
    steps: [
      {
        from: 0,
        to: 1,
        why:
          'store was added; a node saved with a folder of its own (dir) and no store keeps that folder (store-ref.ts). ' +
          'The failed list got its bounds, with the defaults a missing value means.',
        add: { failedMaxEntries: 10000, failedMaxAgeDays: 90 },
      },
    ],
  },
};

/** A saved `version`: a whole number ≥ 0 (the editor may save it as text); missing means 0. */
const savedVersion = z.union([z.number().int().nonnegative(), z.string().trim().regex(/^\d+$/).transform(Number)]);

/** The version a node's settings were saved with: 0 when missing; undefined when unreadable. */
export function versionOf(config: Record<string, unknown>): number | undefined {
  const v = config.version;
  if (v === undefined || v === null || v === '') return 0;
  const parsed = savedVersion.safeParse(v);
  return parsed.success ? parsed.data : undefined;
}

export interface Migrated<T> {
  /** A copy of the settings, as the current release saves them (with `version: current`). */
  config: T & { version: number };
  /** The version read (0 for none or an unreadable one). */
  from: number;
  /** The steps applied, as "from→to". */
  applied: string[];
  /** Saved by a newer release than this one: left as saved. */
  newer: boolean;
  /** The saved version was not a whole number: read as 0. */
  unreadable: boolean;
}

/** One step on a copy of the settings. */
export function applyStep<T extends Record<string, unknown>>(config: T, step: MigrationStep): T {
  const out: Record<string, unknown> = { ...config };
  for (const [from, to] of Object.entries(step.rename ?? {})) {
    if (!(from in out)) continue;
    if (out[to] === undefined) out[to] = out[from];
    delete out[from];
  }
  for (const key of step.remove ?? []) delete out[key];
  for (const [key, value] of Object.entries(step.add ?? {})) {
    if (out[key] === undefined) out[key] = value;
  }
  for (const [key, pairs] of Object.entries(step.replace ?? {})) {
    const hit = pairs.find(([saved]) => out[key] === saved);
    if (hit) out[key] = hit[1];
  }
  out.version = step.to;
  return out as T;
}

/** The settings of a node of `type`, saved by any release, as this release reads them. Never changes `config`. */
export function migrateSettings<T extends Record<string, unknown>>(type: MigratedType, config: T): Migrated<T> {
  const table = MIGRATIONS[type];
  const read = versionOf(config);
  const from = read ?? 0;
  if (from > table.current) return { config: { ...config, version: from }, from, applied: [], newer: true, unreadable: false };
  let out: Record<string, unknown> = { ...config };
  const applied: string[] = [];
  for (const step of table.steps) {
    if (step.from < from) continue;
    out = applyStep(out, step);
    applied.push(`${step.from}→${step.to}`);
  }
  out.version = table.current;
  return { config: out as T & { version: number }, from, applied, newer: false, unreadable: read === undefined };
}

/** The table's own rules: steps contiguous from 0, each one version, ending at `current`. Empty when sound. */
export function checkMigrations(table: NodeMigrations): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(table.current) || table.current < 1) problems.push(`current ${table.current} is not a whole number ≥ 1`);
  table.steps.forEach((s, i) => {
    if (s.from !== i) problems.push(`step ${i} reads version ${s.from}, not ${i}`);
    if (s.to !== s.from + 1) problems.push(`step ${i} goes ${s.from}→${s.to}, not one version`);
    if (!s.why.trim()) problems.push(`step ${i} says nothing about why`);
  });
  if (table.steps.length !== table.current) problems.push(`${table.steps.length} steps for current version ${table.current}`);
  return problems;
}

/** The exported node setting's name for a type's table: `crm-poll` → `crmPollMigrations` (Node-RED wants the type's camel case first). */
export function migrationsSettingName(type: MigratedType): string {
  return type.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase()) + 'Migrations';
}
