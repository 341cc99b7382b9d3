/**
 * A new researcher's path, after the quick start: open notebook 01, run all cells, see the
 * monitor end with its column headers and a green final state, open the data dictionary in the
 * FLAME panel, decrypt the result and see it as a table. The screenshots become README's pictures.
 */

import { expect, test, type Page } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import { openFlamePanel, openLab, runCommand, startRunAll } from './lab';

const NOTEBOOK = 'notebooks/01-getting-started.ipynb';
const CI_ARTIFACTS = path.join(__dirname, '..', '..', 'ci-artifacts');

/** Answers the kernel's passphrase prompts (stdin boxes in cell outputs) until `done` shows. */
async function runThrough(page: Page, done: ReturnType<Page['locator']>): Promise<void> {
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
        return done.isVisible();
      },
      { timeout: 420_000, intervals: [1000] }
    )
    .toBe(true);
}

test('a new user runs notebook 01, reads the data dictionary and sees the result as a table', async ({ page }) => {
  await openLab(page, NOTEBOOK);
  const notebook = page.locator('.jp-NotebookPanel', { hasText: '%%flame' }).first();
  await expect(notebook).toBeVisible({ timeout: 60_000 });
  await expect(page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')).toBeVisible({
    timeout: 120_000
  });
  await runCommand(page, 'notebook:clear-all-cell-outputs');
  await startRunAll(page, notebook);

  // The kernel asks for the key's passphrase (Lab was started without it); then all runs.
  const last = notebook.locator('.jp-CodeCell', { hasText: '--frame' });
  await runThrough(page, last.locator('.jp-OutputArea-output table'));

  // The monitor ended green, with its column headers; at the end it is static HTML.
  const monitor = notebook.locator('.flame-monitor').first();
  await expect(notebook.locator('.flame-final-executed').first()).toBeVisible();
  await expect(monitor.locator('th', { hasText: 'approval' })).toBeVisible();
  await expect(monitor.locator('th', { hasText: 'last log' })).toBeVisible();
  await monitor.scrollIntoViewIfNeeded();
  await monitor.screenshot({ path: path.join(CI_ARTIFACTS, 'monitor.png') });

  // Decrypting shows the result as a table (the last cell: %flame result ... --frame).
  await expect(last.locator('.jp-OutputArea-output table')).toBeVisible();
  await expect(last.locator('.jp-OutputArea-output table')).toContainText('mean_age');
  await last.scrollIntoViewIfNeeded();
  await last.screenshot({ path: path.join(CI_ARTIFACTS, 'result-table.png') });

  // The data dictionary in the panel: uk-aachen's patients.csv with units.
  const panel = await openFlamePanel(page);
  await expect(panel.locator('[data-connection="connected"][data-reachable="true"]')).toBeVisible({
    timeout: 120_000
  });
  const data = panel.getByRole('region', { name: 'Data' });
  const aachen = data.locator('details[data-node="uk-aachen"]');
  await expect(aachen).toBeVisible({ timeout: 60_000 });
  await aachen.locator('summary').click();
  await expect(aachen.locator('tr[data-column="age"]')).toContainText('integer [a]');
  await expect(aachen).toContainText('ICD-10-GM');
  await data.screenshot({ path: path.join(CI_ARTIFACTS, 'flame-data.png') });

  // The analysis in the list: name, short id, relative time; the key grouped by four.
  const row = panel.getByRole('listbox', { name: 'Analyses' }).getByRole('option').first();
  await expect(row).toContainText('mean age');
  await expect(row.locator('time')).toContainText('ago');
  await expect(panel.locator('.jp-FlamePanel-keyId')).toHaveText(/^([0-9a-f]{4} ){7}[0-9a-f]{4}$/);
  await row.click();
  await expect(panel.locator('.jp-FlamePanel-detail')).toBeVisible();
  await panel.screenshot({ path: path.join(CI_ARTIFACTS, 'flame-panel.png') });

  // Stopping the sandbox asks first; cancelling the question keeps it running.
  await panel.getByRole('button', { name: 'Stop sandbox' }).click();
  const confirm = page.locator('.jp-Dialog', { hasText: 'Stop the sandbox?' });
  await expect(confirm).toBeVisible();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await expect(panel.locator('[data-reachable="true"]')).toBeVisible();

  expect(fs.existsSync(path.join(CI_ARTIFACTS, 'monitor.png'))).toBe(true);
});
