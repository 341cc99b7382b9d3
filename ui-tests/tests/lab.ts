/** Helpers shared by the browser tests: where the JupyterLab started by run.sh lives, and common steps. */

import { expect, type Locator, type Page } from '@playwright/test';
import * as path from 'path';

export const LAB_URL = requireEnv('LAB_URL');
export const LAB_TOKEN = requireEnv('LAB_TOKEN');
export const ARTIFACTS = process.env.ARTIFACTS ?? path.join(__dirname, '..', 'artifacts');

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests through ui-tests/run.sh`);
  }
  return value;
}

let workspaces = 0;

/**
 * Opens JupyterLab (optionally a file in it) in a fresh workspace, so no tab or dialog from an
 * earlier test comes back, logs in with the token and waits until the shell is drawn.
 */
export async function openLab(page: Page, file?: string): Promise<void> {
  const workspace = `t${process.pid}-${++workspaces}`;
  const tree = file ? `/tree/${file}` : '';
  await page.goto(
    `${LAB_URL}/lab/workspaces/${workspace}${tree}?reset&token=${encodeURIComponent(LAB_TOKEN)}`
  );
  // The shell appears first, then the splash goes; generous bounds for a loaded CI machine.
  await expect(page.locator('.jp-LabShell')).toBeAttached({ timeout: 120_000 });
  await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 120_000 });
  await expect(page.locator('.jp-LabShell')).toBeVisible();
  // Layout restoration moves focus around; act only once it is over.
  await page.evaluate(() => (window as unknown as { jupyterapp: { restored: Promise<void> } }).jupyterapp.restored);
}

/**
 * Starts "run all" in the notebook and returns once its first cell has begun. Not awaited to
 * the end: the command resolves only when every cell ran, and a cell may wait for input. A
 * kernel still settling may drop the request: then it is sent again.
 */
export async function startRunAll(page: Page, notebook: Locator): Promise<void> {
  const firstPrompt = notebook.locator('.jp-CodeCell .jp-InputPrompt').first();
  await expect
    .poll(
      async () => {
        if (/[0-9*]/.test((await firstPrompt.textContent()) ?? '')) {
          return true;
        }
        await notebook.locator('.jp-Notebook').click({ position: { x: 5, y: 5 } });
        await page.evaluate(() => {
          void (window as any).jupyterapp.commands.execute('notebook:run-all-cells');
        });
        return false;
      },
      { timeout: 120_000, intervals: [5000] }
    )
    .toBe(true);
}

/** Clicks the FLAME tab in the side bar and returns the panel. */
export async function openFlamePanel(page: Page) {
  const tab = page.locator('.jp-SideBar li[data-id="flame-lab-panel"]');
  await expect(tab).toBeVisible({ timeout: 30_000 });
  await tab.click();
  const panel = page.getByRole('region', { name: 'FLAME', exact: true });
  await expect(panel).toBeVisible();
  return panel;
}

/** Runs a JupyterLab command through the app object (the server runs with expose_app_in_browser). */
export async function runCommand(page: Page, id: string, args: object = {}): Promise<void> {
  await page.evaluate(
    async ([command, commandArgs]) => {
      const app = (window as unknown as { jupyterapp: { commands: { execute(id: string, a: object): Promise<unknown> } } }).jupyterapp;
      await app.commands.execute(command as string, commandArgs as object);
    },
    [id, args] as const
  );
}

/** WCAG contrast ratio between two CSS rgb()/rgba() colors. */
export function contrastRatio(foreground: string, background: string): number {
  const luminance = (color: string) => {
    const [r, g, b] = (color.match(/[\d.]+/g) ?? ['0', '0', '0']).slice(0, 3).map(Number);
    const channel = (v: number) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const [hi, lo] = [luminance(foreground), luminance(background)].sort((a, b) => b - a);
  return (hi + 0.05) / (lo + 0.05);
}
