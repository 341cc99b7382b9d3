/** Playwright runs against a JupyterLab that run.sh started, in Debian's Chromium (no browser download). */

import { defineConfig } from '@playwright/test';

const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: 'tests',
  outputDir: 'artifacts/test-results',
  workers: 1,
  forbidOnly: true,
  retries: 0,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: chromium,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    },
    trace: 'off',
    screenshot: 'only-on-failure'
  },
  projects: [
    // JupyterLab without the flame_lab server extension: the panel must say so.
    { name: 'no-api', testMatch: /panel\.spec\.ts/, timeout: 240_000 },
    // JupyterLab with the server extension and the sandbox: the full submission.
    { name: 'sandbox', testMatch: /(submit|newuser)\.spec\.ts/, timeout: 600_000 },
    // Saved monitors and Decrypt buttons after a kernel restart and a reopen: static, never
    // "model not found"; what an analysis waits for, in the monitor and the panel.
    { name: 'widgets', testMatch: /restart\.spec\.ts/, timeout: 600_000 }
  ]
});
