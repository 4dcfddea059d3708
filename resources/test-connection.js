/*
 * Test connection for the config dialogs of node-red-contrib-siagh-sync: one script for both
 * crm-config and siagh-config. Node-RED serves the package's resources/ folder at
 * resources/node-red-contrib-siagh-sync/…, and each dialog's .html loads this file with
 *   <script src="resources/node-red-contrib-siagh-sync/test-connection.js"></script>
 * (a relative URL, so a custom httpAdminRoot keeps working). Both dialogs load it: it defines
 * its function once.
 *
 * siaghSyncTestConnection(node, {type, prefix, fields}) — called from oneditprepare:
 *   type    the config node type: 'crm-config' or 'siagh-config' (endpoint siagh-sync/<type>/test,
 *           "running" text <type>.test.running)
 *   prefix  the dialog's element prefix: button #node-config-<prefix>-test, result
 *           #node-config-<prefix>-test-result
 *   fields  the dialog fields sent, read from #node-config-input-<field>
 * It posts the dialog's current values with the node's id. The server uses the stored password
 * (the dialog shows __PWRD__) only for a deployed node of that type and only against the base URL
 * it was deployed with, and never reads a ${VARIABLE} typed in the dialog from the environment.
 */
(function () {
    'use strict';
    if (typeof window.siaghSyncTestConnection === 'function') return;

    function show(out, ok, text) {
        out.removeClass('siagh-sync-ok siagh-sync-bad').addClass(ok ? 'siagh-sync-ok' : 'siagh-sync-bad').text((ok ? '✔ ' : '✘ ') + text);
    }

    window.siaghSyncTestConnection = function (node, opts) {
        var button = $('#node-config-' + opts.prefix + '-test');
        var out = $('#node-config-' + opts.prefix + '-test-result');
        button.off('click.siaghSyncTest').on('click.siaghSyncTest', function (e) {
            e.preventDefault();
            var body = { id: node.id };
            $.each(opts.fields, function (_, f) {
                body[f] = $('#node-config-input-' + f).val();
            });
            out.removeClass('siagh-sync-ok siagh-sync-bad').text(node._(opts.type + '.test.running'));
            button.prop('disabled', true);
            $.ajax({
                url: 'siagh-sync/' + opts.type + '/test',
                type: 'POST',
                contentType: 'application/json',
                dataType: 'json',
                data: JSON.stringify(body)
            }).done(function (r) {
                show(out, !!(r && r.ok), ((r && r.message) || '') + (r && r.code ? ' [' + r.code + ']' : ''));
            }).fail(function (xhr) {
                var j = xhr.responseJSON;
                show(out, false, (j && j.message) || xhr.responseText || xhr.statusText || String(xhr.status));
            }).always(function () {
                button.prop('disabled', false);
            });
        });
    };
})();
