/**
 * A node's settings as saved, brought up to this release before the node reads them (the steps are in
 * `migrate.ts`), and the migration table handed to the editor. Each node's constructor starts with
 * `def = createNode(RED, this, '<type>', def)` instead of `RED.nodes.createNode(this, def)`.
 */
import { migrateSettings, MIGRATIONS, migrationsSettingName, type MigratedType } from './migrate';
import type { NodeAPI, NodeDef } from './red';

/**
 * RED.nodes.createNode, then the settings migrated for the node to read: a copy, so the deployed flow
 * stays as saved. createNode gets the object the runtime passed (it carries hidden fields such as
 * the node's flow, and reads none of the settings a step changes).
 */
export function createNode<T extends NodeDef>(RED: NodeAPI, node: object, type: MigratedType, saved: T): T {
  RED.nodes.createNode(node, saved);
  const m = migrateSettings(type, saved);
  const warn = (node as { warn?: (text: string) => void }).warn;
  if (m.newer && warn) {
    warn.call(node, `These settings were saved by a newer release of node-red-contrib-siagh-sync (settings version ${m.from}; this one knows up to ${MIGRATIONS[type].current}): they are used as saved. Update the package, or open the node and check its settings.`);
  } else if (m.unreadable && warn) {
    warn.call(node, `The settings version ${JSON.stringify(saved.version)} is not a whole number: read as settings saved before versions (0).`);
  }
  return m.config;
}

/** The registerType `settings` that export the type's migration table to the editor (RED.settings.<type>Migrations). */
export function migrationSettings(type: MigratedType): Record<string, { value: unknown; exportable: true }> {
  return { [migrationsSettingName(type)]: { value: MIGRATIONS[type], exportable: true } };
}
