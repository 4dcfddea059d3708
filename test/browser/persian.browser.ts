/**
 * Persian: the editor opened by a browser whose language is Persian (Chromium --lang=fa, so
 * navigator.language = "fa"). Node-RED ships no fa UI locale, so its own menus stay English, but
 * the node catalogues and help are asked for in the browser's language: ours come from
 * locales/fa/. Also "fa-IR" (the editor-language setting, or a browser reporting the region) falls
 * back to fa. The help is right-to-left.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  Editor,
  Page,
  PKG_NAME,
  Sims,
  dragFromPalette,
  editorSession,
  nodeTypes,
  openNodeDialog,
  repoRoot,
  runtimeUnderTest,
  settleTray,
  shot,
} from '../helpers/browser';

type Catalogue = Record<string, unknown>;

function faCatalogue(type: string): Catalogue | undefined {
  const f = path.join(repoRoot(), 'nodes', type, 'locales', 'fa', `${type}.json`);
  return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as Catalogue) : undefined;
}

/** Every leaf of a catalogue as [dotted key, text]. */
function leaves(obj: Catalogue, prefix = ''): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'string') out.push([key, v]);
    else if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...leaves(v as Catalogue, key));
  }
  return out;
}

/** The first paragraph of the fa help, as text. */
function faHelpLead(type: string): string | undefined {
  const f = path.join(repoRoot(), 'nodes', type, 'locales', 'fa', `${type}.html`);
  if (!fs.existsSync(f)) return undefined;
  const m = /<p>([\s\S]*?)<\/p>/.exec(fs.readFileSync(f, 'utf8'));
  return m ? m[1].replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim() : undefined;
}

/** Keys whose translation the editor does not give as the fa catalogue says. */
async function untranslated(page: Page, types: string[]): Promise<string[]> {
  const wrong: string[] = [];
  for (const t of types) {
    const cat = faCatalogue(t);
    if (!cat) {
      wrong.push(`${t}: no locales/fa/${t}.json`);
      continue;
    }
    const pairs = leaves(cat);
    const got = await page.evaluate(
      ({ ns, keys }: { ns: string; keys: string[] }) => keys.map((k) => (globalThis as any).RED._(`${ns}:${k}`)),
      { ns: `${PKG_NAME}/${t}`, keys: pairs.map(([k]) => k) },
    );
    pairs.forEach(([k, v], i) => {
      if (got[i] !== v) wrong.push(`${t}:${k} = ${JSON.stringify(got[i])}, fa says ${JSON.stringify(v)}`);
    });
  }
  return wrong;
}

/** Show a node type's help in the sidebar; return how its right-to-left block renders. */
async function helpView(page: Page, type: string, lead: string): Promise<{ direction: string; textAlign: string; found: boolean }> {
  await page.evaluate((t: string) => (globalThis as any).RED.sidebar.help.show(t), type);
  const handle = await page.waitForFunction(
    (text: string) => {
      const doc = (globalThis as any).document;
      for (const el of Array.from(doc.querySelectorAll('[dir="rtl"]')) as any[]) {
        if (el.offsetParent !== null && el.textContent.replace(/\s+/g, ' ').includes(text)) {
          const cs = (globalThis as any).getComputedStyle(el);
          return { direction: cs.direction, textAlign: cs.textAlign, found: true };
        }
      }
      return false;
    },
    lead,
    { timeout: 5000 },
  );
  return (await handle.jsonValue()) as { direction: string; textAlign: string; found: boolean };
}

describe(`browser: Persian (fa) catalogue and right-to-left help (${runtimeUnderTest().label})`, function () {
  this.timeout(60_000);
  let sims: Sims;
  let ed: Editor;
  let page: Page;
  const { palette, config } = nodeTypes();
  const all = [...palette, ...config];

  editorSession({ withEnv: true, lang: 'fa' }, (s) => ({ sims, ed, page } = s));

  it('the browser speaks fa; Node-RED offers no fa UI locale, so its own menus stay English', async () => {
    const info = await page.evaluate(() => {
      const w = globalThis as any;
      return { nav: w.navigator.language, offered: w.RED.settings.theme('languages') as string[], ui: w.RED.i18n.lang(), deploy: w.$('#red-ui-header-button-deploy').text().trim() };
    });
    assert.equal(info.nav, 'fa');
    assert.ok(!info.offered.includes('fa'), 'Settings > View > Language cannot choose fa');
    assert.equal(info.ui, 'en-US', 'the editor UI falls back to English');
    assert.equal(info.deploy, 'Deploy');
  });

  it('every fa catalogue entry of every node is what the editor shows', async () => {
    assert.deepEqual(await untranslated(page, all), []);
  });

  it('the edit dialogs show the Persian labels', async () => {
    const id = await dragFromPalette(page, 'crm-fetch', { x: 260, y: 120 });
    await openNodeDialog(page, id);
    const fa = faCatalogue('crm-fetch') as { 'crm-fetch': { label: Record<string, string>; what: Record<string, string> } };
    const whatLabel = (await page.locator('label[for="node-input-what"]').innerText()).trim();
    assert.equal(whatLabel, fa['crm-fetch'].label.what);
    const options = await page.locator('#node-input-what option').allInnerTexts();
    assert.deepEqual(options.map((o) => o.trim()), Object.values(fa['crm-fetch'].what));
    await shot(page, 'fa-crm-fetch-dialog');
    await page.locator('#node-input-btn-crm-add').click();
    await page.locator('#node-config-input-baseUrl').waitFor({ state: 'visible' });
    await settleTray(page);
    const faCfg = faCatalogue('crm-config') as { 'crm-config': { label: Record<string, string> } };
    assert.equal((await page.locator('label[for="node-config-input-baseUrl"]').innerText()).trim(), faCfg['crm-config'].label.baseUrl);
    await shot(page, 'fa-crm-config-dialog');
    await page.locator('#node-config-dialog-cancel').click();
    await page.locator('#node-dialog-cancel').waitFor({ state: 'visible' });
    await settleTray(page);
    await page.locator('#node-dialog-cancel').click();
  });

  it('the help sidebar shows each node\'s Persian help, laid out right to left', async () => {
    const problems: string[] = [];
    for (const t of all) {
      const lead = faHelpLead(t);
      if (!lead) {
        problems.push(`${t}: no fa help`);
        continue;
      }
      try {
        const v = await helpView(page, t, lead.slice(0, 40));
        if (v.direction !== 'rtl') problems.push(`${t}: direction ${v.direction}`);
      } catch {
        problems.push(`${t}: the fa help text is not shown in a dir="rtl" block`);
      }
    }
    assert.deepEqual(problems, []);
    await helpView(page, 'siagh-upsert', (faHelpLead('siagh-upsert') ?? '').slice(0, 40));
    await shot(page, 'fa-help-siagh-upsert');
  });

  it('fa-IR (editor-language setting or a regional browser locale) falls back to the fa catalogue and help', async () => {
    await page.evaluate(() => (globalThis as any).localStorage.setItem('editor-language', 'fa-IR'));
    await ed.reload();
    assert.equal(await page.evaluate(() => (globalThis as any).localStorage.getItem('editor-language')), 'fa-IR');
    assert.deepEqual(await untranslated(page, all), []);
    const lead = faHelpLead('crm-fetch')!;
    const v = await helpView(page, 'crm-fetch', lead.slice(0, 40));
    assert.equal(v.direction, 'rtl');
    assert.deepEqual(ed.pageErrors, []);
  });
});
