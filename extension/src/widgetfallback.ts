/**
 * A saved widget whose model is gone shows the static HTML its bundle carries, instead of
 * "Error displaying widget: model not found".
 *
 * The FLAME monitor and its Decrypt button are displayed as a bundle with the widget view and a
 * `text/html` snapshot of the current state (flame_lab/kernel/widgets.py). JupyterLab's widget
 * manager (@jupyter-widgets/jupyterlab-manager) renders only the view, and once the kernel that
 * owned the model has restarted, or the notebook is reopened with a new kernel or none, it has
 * no fallback. Its renderer class is reached through the widget-view factory that every
 * notebook's rendermime registry holds, and two of its members are wrapped, using only the
 * manager's public API (get_model, create_view, restoredStatus, restored):
 * - `manager` (setter): remembered, so that a bundle with HTML can be drawn here;
 * - `renderModel`: for a bundle with `text/html`, the snapshot is shown at once (sanitized) and
 *   replaced by the live view when the manager has the model with a live connection to its
 *   kernel; it stays when the model is gone, and comes back when the live view goes or its model
 *   loses its kernel (a restart leaves the old models in the manager, disconnected: a frozen
 *   monitor, a Decrypt button that does nothing). A new bundle for the model already shown (a
 *   refreshed snapshot) keeps the live view instead of creating a second one. Bundles without
 *   HTML go to the original renderer unchanged.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';

export const WIDGET_VIEW_MIME = 'application/vnd.jupyter.widget-view+json';
export const SNAPSHOT_CLASS = 'jp-FlameWidgetSnapshot';

/** What is used of @jupyter-widgets' LabWidgetManager: its public API. */
export interface WidgetManagerLike {
  readonly restoredStatus: boolean;
  readonly restored: { connect(slot: () => void, thisArg?: unknown): boolean };
  get_model(id: string): Promise<unknown>;
  create_view(model: unknown): Promise<{ luminoWidget?: ViewLike; pWidget?: ViewLike }>;
}

/** A widget model (a Backbone model), as far as it is used here. */
interface ModelLike {
  comm_live?: boolean;
  on?(event: string, callback: () => void): void;
  off?(event: string, callback: () => void): void;
}

/** A widget view's Lumino widget, as far as it is used here. */
export interface ViewLike {
  readonly isDisposed: boolean;
  readonly disposed: { connect(slot: () => void, thisArg?: unknown): boolean };
  dispose(): void;
}

/** The widget renderer (a Lumino Panel), as far as it is used here. */
export interface RendererLike {
  readonly isDisposed: boolean;
  addWidget(widget: unknown): void;
  renderModel(model: IRenderMime.IMimeModel): Promise<void>;
}

/** Draws and removes the static snapshot inside a renderer (the DOM part, swapped in tests). */
export interface SnapshotUi {
  show(host: RendererLike, html: string): void;
  clear(host: RendererLike): void;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>(r => (resolve = r));
  return { promise, resolve };
}

/** What one renderer remembers (kept outside the instance, whose fields are not ours). */
interface RendererState {
  manager: Deferred<WidgetManagerLike>;
  latest: IRenderMime.IMimeModel | null;
  view: ViewLike | null;
  viewId: string | null;
  /** The model was missing before the manager restored its widgets: try again after. */
  retry: boolean;
}

const states = new WeakMap<object, RendererState>();

function stateOf(renderer: object): RendererState {
  let state = states.get(renderer);
  if (!state) {
    state = { manager: deferred(), latest: null, view: null, viewId: null, retry: false };
    states.set(renderer, state);
  }
  return state;
}

/** The bundle's static HTML, or null when it has none (then the original renderer draws). */
export function snapshotHtml(model: IRenderMime.IMimeModel): string | null {
  const html: unknown = model.data['text/html'];
  if (typeof html === 'string') {
    return html;
  }
  if (Array.isArray(html) && html.every(part => typeof part === 'string')) {
    return html.join('');
  }
  return null;
}

/** The widget model id the bundle names ('' when the view was closed, null when none). */
export function modelId(model: IRenderMime.IMimeModel): string | null {
  const view = model.data[WIDGET_VIEW_MIME] as { model_id?: unknown } | undefined;
  return view && typeof view.model_id === 'string' ? view.model_id : null;
}

const patched = new WeakSet<object>();

/**
 * Wraps `renderModel` and the `manager` setter of the widget renderer class (once per class).
 * Returns false, changing nothing, if the class does not look like the renderer this expects.
 */
export function guardRendererClass(cls: { prototype: object }, ui: SnapshotUi): boolean {
  const proto = cls.prototype as Record<string, unknown>;
  if (patched.has(proto)) {
    return true;
  }
  const original = proto.renderModel;
  const setter = findSetter(proto, 'manager');
  if (typeof original !== 'function' || !setter) {
    return false;
  }
  const originalRender = original as (this: RendererLike, model: IRenderMime.IMimeModel) => Promise<void>;

  Object.defineProperty(proto, 'manager', {
    configurable: true,
    set(this: RendererLike, manager: WidgetManagerLike) {
      setter.call(this, manager);
      const state = stateOf(this);
      state.manager.resolve(manager);
      state.manager = { promise: Promise.resolve(manager), resolve: () => undefined };
      manager.restored.connect(() => {
        if (state.retry && state.latest && !this.isDisposed) {
          state.retry = false;
          void this.renderModel(state.latest);
        }
      }, this);
    }
  });

  proto.renderModel = async function (this: RendererLike, model: IRenderMime.IMimeModel): Promise<void> {
    const html = snapshotHtml(model);
    if (html === null) {
      return originalRender.call(this, model);
    }
    const state = stateOf(this);
    state.latest = model;
    const id = modelId(model);
    if (state.view && !state.view.isDisposed) {
      if (state.viewId === id) {
        return; // the same model with a newer snapshot: the live view stays as it is
      }
      const old = state.view;
      state.view = null;
      old.dispose();
    }
    ui.show(this, html);
    if (!id) {
      return; // the view was closed: its snapshot is what is left
    }
    const manager = await state.manager.promise;
    if (state.latest !== model || this.isDisposed) {
      return;
    }
    let widgetModel: ModelLike;
    try {
      widgetModel = (await manager.get_model(id)) as ModelLike;
    } catch {
      // Gone for good once the manager has restored what its kernel holds; else maybe later.
      state.retry = !manager.restoredStatus;
      return;
    }
    if (widgetModel.comm_live === false) {
      return; // its kernel is gone (restarted): a view of it could not change or act
    }
    let view: ViewLike | undefined;
    try {
      const created = await manager.create_view(widgetModel);
      view = created.luminoWidget ?? created.pWidget;
    } catch (error) {
      console.warn('flame-lab: the widget view could not be created; its snapshot stays.', error);
      return;
    }
    if (!view) {
      return;
    }
    if (state.latest !== model || this.isDisposed) {
      view.dispose();
      return;
    }
    const live = view;
    ui.clear(this);
    this.addWidget(live);
    state.view = live;
    state.viewId = id;
    // The live view goes when its model loses its kernel (a restart) or is closed: its
    // snapshot comes back.
    const onLive = (): void => {
      if (widgetModel.comm_live === false) {
        live.dispose();
      }
    };
    widgetModel.on?.('comm_live_update', onLive);
    live.disposed.connect(() => {
      widgetModel.off?.('comm_live_update', onLive);
      if (state.view !== live) {
        return;
      }
      state.view = null;
      state.viewId = null;
      const latest = state.latest && snapshotHtml(state.latest);
      if (latest !== null && latest !== undefined && !this.isDisposed) {
        ui.show(this, latest);
      }
    });
  };
  patched.add(proto);
  return true;
}

function findSetter(proto: object, name: string): ((this: unknown, value: unknown) => void) | null {
  for (let p: object | null = proto; p; p = Object.getPrototypeOf(p)) {
    const descriptor = Object.getOwnPropertyDescriptor(p, name);
    if (descriptor) {
      return descriptor.set ?? null;
    }
  }
  return null;
}

/** The widget-view factory a rendermime registry holds, as far as it is used here. */
export interface FactoryHolder {
  getFactory(mimeType: string): IRenderMime.IRendererFactory | undefined;
}

/**
 * Finds the widget renderer class through `rendermime`'s widget-view factory (one throwaway
 * renderer is made to learn it) and guards it. False when no widget manager is installed.
 */
export function guardWidgetViews(rendermime: FactoryHolder, ui: SnapshotUi): boolean {
  const factory = rendermime.getFactory(WIDGET_VIEW_MIME);
  if (!factory) {
    return false;
  }
  const probe = factory.createRenderer({ mimeType: WIDGET_VIEW_MIME } as IRenderMime.IRendererOptions);
  const cls = Object.getPrototypeOf(probe)?.constructor as { prototype: object } | undefined;
  probe.dispose();
  if (!cls || !guardRendererClass(cls, ui)) {
    console.warn('flame-lab: unknown widget renderer; saved monitors show what the widget manager shows.');
    return false;
  }
  return true;
}
