/** The flame-lab JupyterLab plugin: wires the panel, the submit command and settings to JupyterLab. */

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ICommandPalette, ISanitizer, showErrorMessage } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, type NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { CommandToolbarButton } from '@jupyterlab/ui-components';

import { API_ROOT, ApiError, FlameApi } from './api';
import { resultCellSource, withSubmission, type NotebookJSON } from './cells';
import { confirmAction, dialogUi } from './dialogs';
import { flameIcon } from './icon';
import { DEFAULT_INTERVAL, FlameModel } from './model';
import { FlamePanel, PANEL_ID } from './panel';
import { domSnapshotUi } from './snapshot';
import { submitNotebook } from './submission';
import { guardWidgetViews } from './widgetfallback';

const PLUGIN_ID = 'flame-lab:plugin';

export const CommandIds = {
  submit: 'flame-lab:submit',
  openPanel: 'flame-lab:open-panel',
  openResult: 'flame-lab:open-result'
} as const;

interface Settings {
  interval: number;
  defaultNodes: string[];
  profile: string;
}

function readSettings(settings: ISettingRegistry.ISettings | null): Settings {
  const get = (key: string) => settings?.get(key).composite;
  const seconds = Number(get('refreshInterval') ?? DEFAULT_INTERVAL / 1000);
  const nodes = get('defaultNodes');
  const profile = get('profile');
  return {
    interval: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_INTERVAL,
    defaultNodes: Array.isArray(nodes) ? nodes.map(String) : [],
    profile: typeof profile === 'string' ? profile.trim() : ''
  };
}

function describe(error: unknown): string {
  if (error instanceof ApiError) {
    return error.hint ? `${error.message}\n\n${error.hint}` : error.message;
  }
  return String(error);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'FLAME panel and "Submit to FLAME" for flame_lab.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, ICommandPalette, ISanitizer],
  activate: async (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    registry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    sanitizer: IRenderMime.ISanitizer | null
  ) => {
    // Saved FLAME monitors and Decrypt buttons whose widget model is gone show their static
    // snapshot; set up on the first notebook, before its outputs are drawn (widgetfallback.ts).
    const snapshotUi = domSnapshotUi(sanitizer ?? undefined);
    let widgetsGuarded = false;
    const guardWidgets = (notebook: NotebookPanel): void => {
      if (!widgetsGuarded) {
        widgetsGuarded = guardWidgetViews(notebook.content.rendermime, snapshotUi);
      }
    };
    let settings: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        settings = await registry.load(PLUGIN_ID);
      } catch (error) {
        console.warn('flame-lab: settings could not be loaded, using defaults.', error);
      }
    }
    let current = readSettings(settings);

    const serverSettings = ServerConnection.makeSettings();
    const api = new FlameApi(
      (path, init) =>
        ServerConnection.makeRequest(
          URLExt.join(serverSettings.baseUrl, API_ROOT, path),
          init,
          serverSettings
        ),
      () => current.profile
    );
    const model = new FlameModel(api, { interval: current.interval });
    settings?.changed.connect(() => {
      current = readSettings(settings);
      model.setInterval(current.interval);
      void model.refresh();
    });

    const openResult = (analysisId: string): void => {
      const notebook = tracker.currentWidget;
      if (!notebook) {
        void showErrorMessage(
          'No notebook to open the result in',
          'Open or click into a notebook first, then press "Open result in notebook" again.'
        );
        return;
      }
      const content = notebook.content;
      const index = Math.max(0, content.activeCellIndex) + 1;
      content.model?.sharedModel.insertCell(index, {
        cell_type: 'code',
        source: resultCellSource(analysisId)
      });
      content.activeCellIndex = index;
      app.shell.activateById(notebook.id);
    };

    const panel = new FlamePanel(model, {
      openResult,
      reportError: (title, error) => void showErrorMessage(title, describe(error)),
      confirm: confirmAction
    });
    app.shell.add(panel, 'right', { rank: 900 });
    // Pause polling while the browser tab itself is hidden.
    document.addEventListener('visibilitychange', () => {
      model.setVisible(!document.hidden && panel.isVisible);
    });

    const submit = async (notebook: NotebookPanel): Promise<void> => {
      await notebook.context.ready;
      const json = notebook.context.model.toJSON() as unknown as NotebookJSON;
      await submitNotebook(
        api,
        {
          ...dialogUi,
          recordProvenance: async provenance => {
            const model = notebook.context.model;
            model.setMetadata('flame_lab', withSubmission(model.getMetadata('flame_lab'), provenance));
            await notebook.context.save();
          },
          reveal: async response => {
            app.shell.activateById(PANEL_ID);
            await model.reveal(response.analysis);
          }
        },
        json,
        { path: notebook.context.path, defaultNodes: current.defaultNodes }
      );
    };

    app.commands.addCommand(CommandIds.submit, {
      label: 'Submit to FLAME',
      caption: 'Sign and submit this notebook\'s %%flame cells as a FLAME analysis',
      icon: flameIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const notebook = tracker.currentWidget;
        if (notebook) {
          await submit(notebook);
        }
      }
    });
    app.commands.addCommand(CommandIds.openPanel, {
      label: 'Show FLAME panel',
      execute: () => app.shell.activateById(PANEL_ID)
    });
    app.commands.addCommand(CommandIds.openResult, {
      label: 'Open FLAME result in notebook',
      isEnabled: () => model.selectedId !== null && tracker.currentWidget !== null,
      execute: () => {
        if (model.selectedId) {
          openResult(model.selectedId);
        }
      }
    });
    palette?.addItem({ command: CommandIds.submit, category: 'FLAME' });
    palette?.addItem({ command: CommandIds.openPanel, category: 'FLAME' });

    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (notebook: NotebookPanel) => {
        guardWidgets(notebook);
        const button = new CommandToolbarButton({
          commands: app.commands,
          id: CommandIds.submit,
          label: 'Submit to FLAME'
        });
        notebook.toolbar.insertItem(10, 'flame-lab-submit', button);
        return button;
      }
    });
    tracker.currentChanged.connect(() => app.commands.notifyCommandChanged(CommandIds.submit));
  }
};

export default plugin;
