/** The DOM side of the widget fallback: the static snapshot, sanitized, inside a widget renderer. */

import { Sanitizer } from '@jupyterlab/apputils';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget, type Panel } from '@lumino/widgets';

import { SNAPSHOT_CLASS, type RendererLike, type SnapshotUi } from './widgetfallback';

function snapshots(panel: Panel): Widget[] {
  return panel.widgets.filter(w => w.hasClass(SNAPSHOT_CLASS));
}

/**
 * Shows a bundle's `text/html` as JupyterLab shows untrusted HTML output: always through the
 * sanitizer (no script, no event handler), styled like rendered HTML.
 */
export function domSnapshotUi(sanitizer: IRenderMime.ISanitizer = new Sanitizer()): SnapshotUi {
  return {
    show(host: RendererLike, html: string): void {
      const panel = host as unknown as Panel;
      let snapshot = snapshots(panel)[0];
      if (!snapshot) {
        if (panel.widgets.length === 0) {
          panel.node.textContent = ''; // e.g. "Loading widget..." from an earlier bundle
        }
        snapshot = new Widget();
        snapshot.addClass(SNAPSHOT_CLASS);
        snapshot.addClass('jp-RenderedHTMLCommon');
        panel.addWidget(snapshot);
      }
      snapshot.node.innerHTML = sanitizer.sanitize(html);
    },
    clear(host: RendererLike): void {
      for (const snapshot of snapshots(host as unknown as Panel)) {
        snapshot.dispose();
      }
    }
  };
}
