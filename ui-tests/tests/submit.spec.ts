/**
 * The whole researcher flow against the sandbox federation, through the real server extension:
 * open the getting-started notebook, Submit to FLAME, watch every node reach "executed".
 */

import { expect, test, type Page } from '@playwright/test';
import * as path from 'path';

import { openFlamePanel, openLab, runCommand } from './lab';

const NOTEBOOK = 'notebooks/01-getting-started.ipynb';
const CI_ARTIFACTS = path.join(__dirname, '..', '..', 'ci-artifacts');

/** Fills the passphrase dialog if the server asks for it (run.sh made the key with this passphrase). */
async function unlockIfAsked(page: Page): Promise<void> {
  const dialog = page.locator('.jp-Dialog', { hasText: 'Unlock your FLAME key' });
  if ((await dialog.count()) === 0) {
    return;
  }
  const passphrase = process.env.FLAME_LAB_UI_PASSPHRASE;
  expect(passphrase, 'the server asked for a passphrase but run.sh set none').toBeTruthy();
  await dialog.getByLabel('Key passphrase').fill(passphrase as string);
  await dialog.getByRole('button', { name: 'Unlock and submit' }).click();
}

test('a notebook submitted to the sandbox runs on every node and records its provenance', async ({ page }) => {
  await openLab(page, NOTEBOOK);
  const panel = await openFlamePanel(page);
  await expect(panel.locator('[data-connection="connected"]')).toBeVisible({ timeout: 60_000 });
  await expect(panel.locator('.jp-FlamePanel-banner[data-kind="version"]')).toHaveCount(0);

  // The sandbox may need starting; the panel offers the button when it is down.
  const start = panel.getByRole('button', { name: 'Start sandbox' });
  if (await start.isVisible()) {
    await start.click();
  }
  await expect(panel.getByText('reachable', { exact: true })).toBeVisible({ timeout: 120_000 });
  await expect(panel.getByRole('list', { name: 'Nodes' }).locator('li')).not.toHaveCount(0);

  const notebook = page.locator('.jp-NotebookPanel', { hasText: '%%flame' }).first();
  await expect(notebook).toBeVisible({ timeout: 60_000 });
  await notebook.locator('.jp-Toolbar-item[data-jp-item-name="flame-lab-submit"]').getByRole('button').click();

  const options = page.locator('.jp-Dialog', { hasText: 'Submit to FLAME' });
  await expect(options.getByRole('group', { name: 'Nodes' }).getByRole('checkbox')).not.toHaveCount(0);
  await expect(options.getByLabel('Analysis name')).toHaveValue('01-getting-started');
  await options.getByRole('button', { name: 'Submit' }).click();

  // Either the passphrase dialog or the revealed analysis comes next.
  const detail = panel.locator('.jp-FlamePanel-detail');
  await expect(detail.or(page.locator('.jp-Dialog', { hasText: 'Unlock your FLAME key' }))).toBeVisible({
    timeout: 120_000
  });
  await unlockIfAsked(page);
  await expect(detail).toBeVisible({ timeout: 120_000 });

  const selected = panel.getByRole('listbox', { name: 'Analyses' }).getByRole('option', { selected: true });
  await expect(selected).toHaveCount(1);
  const analysisId = await selected.getAttribute('data-analysis-id');
  expect(analysisId).toBeTruthy();

  // Every node of the analysis reaches "executed".
  const rows = detail.locator('tr[data-node]');
  await expect(rows).not.toHaveCount(0, { timeout: 60_000 });
  await expect
    .poll(
      async () => {
        const states = await rows.locator('.jp-FlamePanel-chip').evaluateAll(chips =>
          chips.map(chip => chip.getAttribute('data-state'))
        );
        if (states.includes('failed') || states.includes('rejected')) {
          const failure = await detail.locator('[data-kind="failure"]').allTextContents();
          throw new Error(`a node did not execute: ${states.join(', ')} ${failure.join(' ')}`);
        }
        return states.length > 0 && states.every(state => state === 'executed');
      },
      { timeout: 300_000, intervals: [1000] }
    )
    .toBe(true);
  await expect(detail.getByRole('log', { name: 'Logs' })).toBeVisible();
  await panel.screenshot({ path: path.join(CI_ARTIFACTS, 'flame-panel-executed.png') });
  await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Dark' });
  await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false', { timeout: 60_000 });
  await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 60_000 });
  await panel.screenshot({ path: path.join(CI_ARTIFACTS, 'flame-panel-executed-dark.png') });
  await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Light' });

  // Provenance was appended to the notebook's metadata.
  const submissions = await page.evaluate(notebookPath => {
    const app = (window as any).jupyterapp;
    const target = [...app.shell.widgets('main')].find((w: any) => w.context?.path === notebookPath);
    return target ? (target.context.model.getMetadata('flame_lab')?.submissions ?? []) : [];
  }, NOTEBOOK);
  expect(submissions.map((s: { analysisId: string }) => s.analysisId)).toContain(analysisId);

  // The result can be opened as a cell in the notebook.
  const open = detail.getByRole('button', { name: 'Open result in notebook' });
  await expect(open).toBeVisible({ timeout: 60_000 });
  await open.click();
  await expect(notebook.locator('.jp-Cell .jp-InputArea', { hasText: `fl.attach("${analysisId}").result()` })).toHaveCount(1);
});
