/**
 * `${NAME}` references to environment variables in settings: the one reader of them.
 *
 * - A whole value `${NAME}` (or `$(NAME)`) names a variable: `envRefName` gives NAME,
 *   `resolveEnv` its value. Node-RED resolves these itself for deployed properties and
 *   credentials; a value still in this form after deploy names a variable set nowhere, and dialog
 *   values sent to an admin endpoint (Test connection) arrive unresolved.
 * - In a path, `${NAME}` may appear anywhere (`expandEnv`); an unset variable is an error.
 */
import { SyncError } from './errors';

/** A valid environment variable name. */
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WHOLE_REF = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$|^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$/;
const REF_ANYWHERE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** NAME when the value (trimmed) is a whole `${NAME}` or `$(NAME)` reference, else undefined. */
export function envRefName(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = WHOLE_REF.exec(value.trim());
  return m ? (m[1] ?? m[2]) : undefined;
}

/** A `${NAME}` value → the variable's value ('' when unset); any other text as it is; not text → ''. */
export function resolveEnv(value: unknown, env: Record<string, string | undefined> = process.env): string {
  if (typeof value !== 'string') return '';
  const name = envRefName(value);
  return name === undefined ? value : (env[name] ?? '');
}

/**
 * Every `${NAME}` in a text replaced by the variable's value; an unset or empty variable is a
 * CONFIG error naming it and the setting (`what`).
 */
export function expandEnv(text: string, what: string, env: Record<string, string | undefined> = process.env): string {
  return text.replace(REF_ANYWHERE, (_m, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') throw new SyncError('CONFIG', `The ${what} uses \${${name}}, but that environment variable is not set.`);
    return v;
  });
}
