/**
 * A notebook saved with a monitor still running and a Decrypt button never clicked: after a
 * kernel restart, after reopening it with a new kernel, and opened with no kernel at all, both
 * show their static snapshot, never "Error displaying widget: model not found". On the way, what the running analysis waits
 * for (a manual approval at uk-koeln) is seen in the live monitor and in the FLAME panel.
 */

import { expect, test, type Locator, type Page } from '@playwright/test';
import * as path from 'path';

import { LAB_TOKEN, LAB_URL, openFlamePanel, openLab, runCommand, startRunAll } from './lab';

const NOTEBOOK = 'saved-monitors.ipynb';
const NO_KERNEL = 'saved-monitors-no-kernel.ipynb';
const CI_ARTIFACTS = path.join(__dirname, '..', '..', 'ci-artifacts');
const WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json';
const WAITS = 'waiting for uk-koeln to approve';

const ANALYSIS = `%%flame
import csv
import io

from flame.star import StarAggregator, StarAnalyzer, StarModel


class AgeSum(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        rows = list(csv.DictReader(io.StringIO(data[0]["patients.csv"].decode())))
        return {"sum": sum(float(row["age"]) for row in rows), "n": len(rows)}


class MeanAge(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return {"mean_age": sum(r["sum"] for r in analysis_results) / sum(r["n"] for r in analysis_results)}

    def has_converged(self, result, last_result):
        return True


StarModel(analyzer=AgeSum, aggregator=MeanAge, data_type="s3", query=["patients.csv"],
          simple_analysis=True, output_type="pickle")
`;

// uk-koeln's steward makes it approve by hand (as notebook 05 does): the second analysis waits.
const MANUAL = `import dataclasses

import flame_lab as fl
from flame_lab.privacy import dump_policy, load_policy
from flame_lab.sandbox.node.layout import NodeFolder

policy_file = NodeFolder.of(fl.connect().sandbox_home, "uk-koeln").policy
dump_policy(dataclasses.replace(load_policy(policy_file), approval="manual"), policy_file)
`;

// A widget bundle whose model never existed, with hostile HTML beside it: the snapshot is shown
// sanitized (the kernel escapes its own text; the extension sanitizes whatever a bundle brings).
const HOSTILE = `from IPython.display import display

display({
    "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0, "model_id": "0" * 32},
    "text/html": '<b class="hostile-bundle">kept</b><img src=x onerror="window.__flamePwned = 1">'
    '<script>window.__flamePwned = 2</script><a href="javascript:window.__flamePwned = 3">link</a>',
    "text/plain": "hostile",
}, raw=True)
`;

const SOURCES = [
  '%load_ext flame_lab',
  HOSTILE,
  '%flame connect',
  ANALYSIS,
  '%flame submit --nodes uk-aachen,uk-koeln,aggregator --name "decrypt later" --wait',
  MANUAL,
  '%flame submit --nodes uk-aachen,uk-koeln,aggregator --name "waits for approval"',
  'print("all cells ran")'
];

/** Writes the test notebook through Jupyter's contents API. */
async function writeNotebook(): Promise<void> {
  const cells = SOURCES.map(source => ({ cell_type: 'code', metadata: {}, source, outputs: [], execution_count: null }));
  const content = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
    cells
  };
  const response = await fetch(`${LAB_URL}/api/contents/${NOTEBOOK}`, {
    method: 'PUT',
    headers: { Authorization: `token ${LAB_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'notebook', format: 'json', content })
  });
  expect(response.ok, await response.text()).toBe(true);
}

/** The saved notebook (the server's JSON of it). */
async function savedNotebook(): Promise<any> {
  const response = await fetch(`${LAB_URL}/api/contents/${NOTEBOOK}?content=1`, {
    headers: { Authorization: `token ${LAB_TOKEN}` }
  });
  return (await response.json()).content;
}

/** The saved notebook's outputs of the cell whose source contains `marker`. */
async function savedOutputs(marker: string): Promise<{ data?: Record<string, unknown> }[]> {
  const cell = (await savedNotebook()).cells.find((c: { source: string }) => c.source.includes(marker));
  return cell.outputs;
}

/** Runs all cells, typing the key's passphrase into the kernel's prompts, until `done` shows. */
async function runAll(page: Page, notebook: Locator, done: Locator): Promise<void> {
  await expect(page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')).toBeVisible({
    timeout: 120_000
  });
  await startRunAll(page, notebook);
  const passphrase = process.env.FLAME_LAB_UI_PASSPHRASE;
  expect(passphrase, 'run.sh sets the passphrase of the key it made').toBeTruthy();
  const box = page.locator('.jp-Stdin-input');
  await expect
    .poll(
      async () => {
        if (await box.first().isVisible()) {
          await box.first().fill(passphrase as string);
          await box.first().press('Enter');
        }
        const errors = await notebook.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').allTextContents();
        const raised = errors.find(text => text.includes('Traceback'));
        if (raised) {
          throw new Error(`a cell failed: ${raised.slice(0, 2000)}`);
        }
        return done.isVisible();
      },
      { timeout: 420_000, intervals: [1000] }
    )
    .toBe(true);
}

/** The browser-side output model's text/html of the running monitor (what a save writes). */
async function liveSnapshot(page: Page): Promise<string> {
  return page.evaluate(([mime]) => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    for (const cell of panel.content.widgets) {
      if (!cell.model.sharedModel.getSource().includes('waits for approval')) {
        continue;
      }
      const outputs = cell.model.outputs;
      for (let i = 0; i < outputs.length; i++) {
        const data = outputs.get(i).data;
        if (data[mime] && String(data['text/html'] ?? '').includes('flame-monitor')) {
          return String(data['text/html']);
        }
      }
    }
    return '';
  }, [WIDGET_VIEW]);
}

/** Both saved widgets show their static snapshot, and nothing says "model not found". */
async function expectSnapshots(notebook: Locator): Promise<void> {
  const decrypt = notebook.locator('.jp-CodeCell', { hasText: 'decrypt later' });
  const running = notebook.locator('.jp-CodeCell', { hasText: '"waits for approval"' });
  const monitor = running.locator('.jp-FlameWidgetSnapshot .flame-monitor');
  await expect(monitor).toBeVisible({ timeout: 120_000 });
  await expect(monitor).toContainText('waits for approval');
  await expect(monitor).toContainText(WAITS);
  await expect(monitor.locator('.flame-snapshot')).toContainText('%flame watch');
  await expect(decrypt.locator('.jp-FlameWidgetSnapshot .flame-result-ready')).toContainText('%flame result');
  // the finished monitor was static HTML already
  await expect(decrypt.locator('.flame-final-executed')).toBeVisible();
  await expect(notebook.getByText('model not found')).toHaveCount(0);
  await expect(notebook.getByText('Error displaying widget')).toHaveCount(0);
}

test('saved monitors and Decrypt buttons stay readable after a kernel restart and a reopen', async ({ page }) => {
  await writeNotebook();
  await openLab(page, NOTEBOOK);
  const notebook = page.locator('.jp-NotebookPanel', { hasText: 'waits for approval' }).first();
  await expect(notebook).toBeVisible({ timeout: 60_000 });
  await runAll(page, notebook, notebook.locator('.jp-OutputArea-output', { hasText: 'all cells ran' }));

  // A bundle whose model does not exist shows its HTML, sanitized: no handler, script or js link.
  const hostile = notebook.locator('.jp-FlameWidgetSnapshot', { has: page.locator('.hostile-bundle') });
  await expect(hostile).toBeVisible({ timeout: 60_000 });
  await expect(hostile.locator('script')).toHaveCount(0);
  await expect(hostile.locator('[onerror]')).toHaveCount(0);
  await expect(hostile.locator('a[href^="javascript"]')).toHaveCount(0);
  expect(await page.evaluate(() => (window as any).__flamePwned)).toBeUndefined();

  // Live: the Decrypt button and the running monitor, which says what it waits for.
  const decrypt = notebook.locator('.jp-CodeCell', { hasText: 'decrypt later' });
  await expect(decrypt.getByRole('button', { name: 'Decrypt result' })).toBeVisible({ timeout: 60_000 });
  const running = notebook.locator('.jp-CodeCell', { hasText: '"waits for approval"' });
  await expect(running.locator('.jupyter-widgets', { hasText: WAITS }).first()).toBeVisible({ timeout: 120_000 });
  // its snapshot (kept beside the widget) has caught up with that state
  await expect.poll(() => liveSnapshot(page), { timeout: 60_000 }).toContain(WAITS);

  // The FLAME panel says it too: in the list and for the selected analysis.
  const panel = await openFlamePanel(page);
  await expect(panel.locator('[data-connection="connected"][data-reachable="true"]')).toBeVisible({
    timeout: 120_000
  });
  const row = panel.getByRole('listbox', { name: 'Analyses' }).getByRole('option', { name: /waits for approval/ });
  await expect(row.locator('[data-kind="waiting"]')).toContainText(WAITS, { timeout: 60_000 });
  await row.click();
  const banner = panel.locator('.jp-FlamePanel-detail [data-kind="waiting"]');
  await expect(banner).toContainText(WAITS);
  await panel.screenshot({ path: path.join(CI_ARTIFACTS, 'flame-panel-waiting.png') }); // redrawn often: the whole panel

  // Save, then restart the kernel: the widgets' models are gone.
  await notebook.click({ position: { x: 5, y: 5 } });
  await runCommand(page, 'docmanager:save');
  const saved = await savedOutputs('"waits for approval"');
  const monitorOutput = saved.find(o => o.data?.[WIDGET_VIEW] && String(o.data?.['text/html']).includes('flame-monitor'));
  expect(String(monitorOutput?.data?.['text/html'])).toContain(WAITS);
  const button = (await savedOutputs('decrypt later')).find(o => o.data?.[WIDGET_VIEW]);
  expect(String(button?.data?.['text/html'])).toContain('flame-result-ready');

  await page.evaluate(async () => {
    await (window as any).jupyterapp.shell.currentWidget.sessionContext.restartKernel();
  });
  await expectSnapshots(notebook);
  await running.locator('.jp-FlameWidgetSnapshot').first().screenshot({
    path: path.join(CI_ARTIFACTS, 'monitor-after-restart.png')
  });

  // Reopen in a fresh page with a new kernel (as after a server restart): still the snapshots.
  await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    await app.serviceManager.sessions.shutdownAll();
  });
  await openLab(page, NOTEBOOK);
  const reopened = page.locator('.jp-NotebookPanel', { hasText: 'waits for approval' }).first();
  await expect(reopened).toBeVisible({ timeout: 60_000 });
  await expect(page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')).toBeVisible({
    timeout: 120_000
  });
  await expectSnapshots(reopened);

  // Reopen a copy with no kernel at all ("No Kernel"): the snapshots come from the file alone.
  const copy = await savedNotebook();
  copy.metadata.kernelspec = { name: 'flame-lab-absent', display_name: 'absent', language: 'none' };
  delete copy.metadata.language_info;
  const put = await fetch(`${LAB_URL}/api/contents/${NO_KERNEL}`, {
    method: 'PUT',
    headers: { Authorization: `token ${LAB_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'notebook', format: 'json', content: copy })
  });
  expect(put.ok, await put.text()).toBe(true);
  await page.evaluate(async () => {
    await (window as any).jupyterapp.serviceManager.sessions.shutdownAll();
  });
  await openLab(page, NO_KERNEL);
  const select = page.locator('.jp-Dialog', { hasText: 'Select Kernel' });
  await select.getByRole('button', { name: 'No Kernel', exact: true }).click();
  const bare = page.locator('.jp-NotebookPanel', { hasText: 'waits for approval' }).first();
  await expectSnapshots(bare);
  const kernel = await page.evaluate(() => (window as any).jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.id ?? null);
  expect(kernel).toBeNull();
});
