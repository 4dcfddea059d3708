/*
 * Settings migrations in the editor, for every node of node-red-contrib-siagh-sync: a node saved by
 * an older release (its `version` below the current one, or none) shows, when its dialog opens, the
 * settings the runtime will use, so that pressing Done saves them and not empty fields or unticked
 * boxes. The steps are not written here: each node type exports its table from the runtime
 * (nodes/shared/migrate.ts) as RED.settings.<type in camel case>Migrations; this file applies them
 * by the same rules as applyStep() there. The runtime migrates at every start anyway; this is what
 * the operator sees.
 *
 * Each .html loads it with
 *   <script type="text/javascript" src="resources/node-red-contrib-siagh-sync/migrate.js"></script>
 * and calls siaghSyncMigrate(this, prefix) first in oneditprepare (prefix 'node-input', or
 * 'node-config-input' for a config node). It sets the migrated values on the node and in the
 * dialog's fields, and the node's version; a node already current is left alone.
 */
(function () {
    'use strict';
    if (typeof window.siaghSyncMigrate === 'function') return;

    function table(type) {
        var name = String(type).replace(/-([a-z0-9])/g, function (_, c) { return c.toUpperCase(); }) + 'Migrations';
        var t = RED.settings[name];
        return t && Array.isArray(t.steps) ? t : null;
    }

    /** The saved version: 0 when none, undefined when not a whole number (read as 0, as the runtime does). */
    function versionOf(v) {
        if (v === undefined || v === null || v === '') return 0;
        if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
        if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) return Number(v);
        return undefined;
    }

    function applyStep(config, step) {
        var out = $.extend({}, config);
        Object.keys(step.rename || {}).forEach(function (from) {
            if (!(from in out)) return;
            var to = step.rename[from];
            if (out[to] === undefined) out[to] = out[from];
            delete out[from];
        });
        (step.remove || []).forEach(function (key) { delete out[key]; });
        Object.keys(step.add || {}).forEach(function (key) {
            if (out[key] === undefined) out[key] = step.add[key];
        });
        Object.keys(step.replace || {}).forEach(function (key) {
            var hit = step.replace[key].filter(function (pair) { return out[key] === pair[0]; })[0];
            if (hit) out[key] = hit[1];
        });
        out.version = step.to;
        return out;
    }

    window.siaghSyncMigrate = function (node, prefix) {
        var t = table(node.type);
        if (!t) return;
        var from = versionOf(node.version);
        if (from === undefined) from = 0;
        if (from >= t.current) return;
        var defaults = node._def.defaults;
        var config = {};
        Object.keys(defaults).forEach(function (key) { config[key] = node[key]; });
        t.steps.forEach(function (step) {
            // a renamed setting reaches the editor only while its old name stays in the .html defaults
            Object.keys(step.rename || {}).forEach(function (key) { if (node[key] !== undefined) config[key] = node[key]; });
        });
        t.steps.forEach(function (step) {
            if (step.from >= from) config = applyStep(config, step);
        });
        Object.keys(defaults).forEach(function (key) {
            if (key === 'version' || config[key] === node[key]) return;
            node[key] = config[key];
            var input = $('#' + prefix + '-' + key);
            if (!input.length) return;
            if (input.attr('type') === 'checkbox') input.prop('checked', config[key] === true || config[key] === 'true');
            else input.val(config[key] === undefined || config[key] === null ? '' : config[key]);
        });
        node.version = t.current;
    };
})();
