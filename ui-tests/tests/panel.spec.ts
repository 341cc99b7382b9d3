/** The FLAME panel in a real JupyterLab whose flame_lab server API is absent. */

import { expect, test } from '@playwright/test';
import * as path from 'path';

import { ARTIFACTS, contrastRatio, openFlamePanel, openLab, runCommand } from './lab';

test('the panel says the server extension is missing, with a hint, in light and dark themes', async ({ page }) => {
  await openLab(page);
  const panel = await openFlamePanel(page);

  await expect(panel.locator('[data-connection="missing"]')).toHaveText(
    'flame_lab server extension missing',
    { timeout: 30_000 }
  );
  const banner = panel.locator('.jp-FlamePanel-banner[data-kind="missing"]');
  await expect(banner).toHaveAttribute('role', 'alert');
  await expect(banner.locator('.jp-FlamePanel-problem')).toContainText('server extension is not answering');
  await expect(banner.locator('.jp-FlamePanel-hint')).toContainText('pip install flame-lab');
  await expect(banner.getByRole('button', { name: 'Retry now' })).toBeVisible();
  await page.screenshot({ path: path.join(ARTIFACTS, 'panel-unreachable-light.png') });
  await panel.screenshot({ path: path.join(ARTIFACTS, 'panel-only-light.png') });

  await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Dark' });
  await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false', { timeout: 30_000 });
  await expect(banner).toBeVisible();
  await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 30_000 });
  for (const part of ['.jp-FlamePanel-problem', '.jp-FlamePanel-hint']) {
    const colors = await banner.locator(part).evaluate(element => {
      const box = element.closest('.jp-FlamePanel-banner') as HTMLElement;
      return { fg: getComputedStyle(element).color, bg: getComputedStyle(box).backgroundColor };
    });
    expect(contrastRatio(colors.fg, colors.bg), `${part} legible on dark`).toBeGreaterThanOrEqual(4.5);
  }
  await page.screenshot({ path: path.join(ARTIFACTS, 'panel-unreachable-dark.png') });
  await panel.screenshot({ path: path.join(ARTIFACTS, 'panel-only-dark.png') });
  await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Light' });
});

test('Submit to FLAME on a notebook without %%flame cells explains why and sends nothing', async ({ page }) => {
  const posts: string[] = [];
  page.on('request', request => {
    if (request.method() === 'POST' && request.url().includes('/flame-lab/api/analyses')) {
      posts.push(request.url());
    }
  });
  await openLab(page);
  await runCommand(page, 'notebook:create-new', { kernelName: 'python3' });
  const notebook = page.locator('.jp-NotebookPanel').last();
  await expect(notebook).toBeVisible({ timeout: 30_000 });

  const button = notebook.locator('.jp-Toolbar-item[data-jp-item-name="flame-lab-submit"]');
  await expect(button).toBeVisible();
  await button.getByRole('button').click();

  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Nothing to submit to FLAME');
  await expect(dialog).toContainText('no %%flame cells');
  await dialog.getByRole('button', { name: 'Ok' }).click();
  await expect(dialog).toHaveCount(0);
  expect(posts).toEqual([]);
});

test('the command palette offers Submit to FLAME', async ({ page }) => {
  await openLab(page);
  const palette = page.locator('#command-palette');
  // The modal palette closes when focus moves; on a busy machine reopen it (bounded: 60 s).
  await expect(async () => {
    await runCommand(page, 'apputils:activate-command-palette');
    await expect(palette).toBeVisible({ timeout: 10_000 });
    const input = palette.locator('input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill('Submit to FLAME', { timeout: 10_000 });
    await expect(palette.locator('.lm-CommandPalette-item', { hasText: 'Submit to FLAME' })).toHaveCount(1, {
      timeout: 10_000
    });
  }).toPass({ timeout: 180_000 });
});
