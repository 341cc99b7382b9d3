/** JupyterLab dialogs for the submit flow: node and name choice, passphrase (never kept), errors. */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { h } from './dom';
import type { SubmitChoices, SubmitUi } from './submission';
import type { NodeInfo } from './types';

class OptionsBody extends Widget implements Dialog.IBodyWidget<SubmitChoices> {
  private readonly nameInput: HTMLInputElement;
  private readonly boxes: HTMLInputElement[] = [];

  constructor(
    nodes: NodeInfo[],
    preselected: string[],
    name: string,
    cellCount: number,
    summary?: string
  ) {
    super();
    this.addClass('jp-FlameSubmit');
    this.nameInput = h('input', {
      id: 'flame-lab-submit-name',
      type: 'text',
      value: name,
      class: 'jp-mod-styled'
    }) as HTMLInputElement;
    const fieldset = h('fieldset', { class: 'jp-FlameSubmit-nodes' }, h('legend', {}, 'Nodes'));
    for (const node of nodes) {
      const box = h('input', {
        type: 'checkbox',
        value: node.name,
        checked: preselected.includes(node.name)
      }) as HTMLInputElement;
      this.boxes.push(box);
      fieldset.appendChild(
        h(
          'label',
          { class: 'jp-FlameSubmit-node' },
          box,
          ` ${node.name} (${node.type}${node.online ? '' : ', offline'})`
        )
      );
    }
    this.node.append(
      h(
        'p',
        {},
        summary ??
          `${cellCount} %%flame cell${cellCount === 1 ? '' : 's'} will be signed and sent as one analysis.`
      ),
      h('label', { for: 'flame-lab-submit-name' }, 'Analysis name'),
      this.nameInput,
      fieldset
    );
  }

  getValue(): SubmitChoices {
    return {
      name: this.nameInput.value.trim(),
      nodes: this.boxes.filter(b => b.checked).map(b => b.value)
    };
  }
}

class PassphraseBody extends Widget implements Dialog.IBodyWidget<string> {
  private readonly input: HTMLInputElement;

  constructor(message: string, hint: string, retry: boolean) {
    super();
    this.addClass('jp-FlameSubmit');
    this.input = h('input', {
      id: 'flame-lab-passphrase',
      type: 'password',
      autocomplete: 'current-password',
      class: 'jp-mod-styled'
    }) as HTMLInputElement;
    this.node.append(
      h('p', {}, retry ? 'That passphrase did not unlock the key. ' : '', message),
      hint ? h('p', { class: 'jp-FlameSubmit-hint' }, hint) : '',
      h('label', { for: 'flame-lab-passphrase' }, 'Key passphrase'),
      this.input
    );
  }

  getValue(): string {
    const value = this.input.value;
    this.input.value = '';
    return value;
  }
}

/** The SubmitUi pieces that are plain dialogs; provenance and reveal are wired in the plugin. */
export const dialogUi: Pick<SubmitUi, 'chooseOptions' | 'askPassphrase' | 'showError'> = {
  async chooseOptions({ nodes, preselected, name, cellCount, summary }) {
    const result = await showDialog({
      title: 'Submit to FLAME',
      body: new OptionsBody(nodes, preselected, name, cellCount, summary),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })],
      focusNodeSelector: 'input'
    });
    return result.button.accept && result.value ? result.value : null;
  },

  async askPassphrase(message, hint, retry) {
    const result = await showDialog({
      title: 'Unlock your FLAME key',
      body: new PassphraseBody(message, hint, retry),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Unlock and submit' })],
      focusNodeSelector: 'input'
    });
    return result.button.accept && result.value !== null ? result.value : null;
  },

  async showError(title, message, hint) {
    await showDialog({
      title,
      body: new Widget({
        node: h('div', {}, h('p', {}, message), hint ? h('p', { class: 'jp-FlameSubmit-hint' }, hint) : '')
      }),
      buttons: [Dialog.okButton()]
    });
  }
};

/** Asks before a destructive action (stop the sandbox, cancel an analysis). */
export async function confirmAction(title: string, message: string, label: string): Promise<boolean> {
  const result = await showDialog({
    title,
    body: message,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label })]
  });
  return result.button.accept;
}
