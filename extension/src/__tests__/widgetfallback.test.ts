import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import {
  WIDGET_VIEW_MIME,
  guardRendererClass,
  guardWidgetViews,
  modelId,
  snapshotHtml,
  type RendererLike,
  type SnapshotUi,
  type WidgetManagerLike
} from '../widgetfallback';

/** A signal as small as Lumino's, for the manager's `restored` and a view's `disposed`. */
class TinySignal {
  private slots: (() => void)[] = [];
  connect(slot: () => void): boolean {
    this.slots.push(slot);
    return true;
  }
  emit(): void {
    for (const slot of [...this.slots]) {
      slot();
    }
  }
}

class FakeView {
  isDisposed = false;
  disposed = new TinySignal();
  dispose(): void {
    if (!this.isDisposed) {
      this.isDisposed = true;
      this.disposed.emit();
    }
  }
}

/** A widget model: connected to its kernel or not, with Backbone-like events. */
class FakeModel {
  comm_live = true;
  private handlers = new Map<string, Set<() => void>>();
  on(event: string, callback: () => void): void {
    this.handlers.set(event, (this.handlers.get(event) ?? new Set()).add(callback));
  }
  off(event: string, callback: () => void): void {
    this.handlers.get(event)?.delete(callback);
  }
  trigger(event: string): void {
    for (const callback of [...(this.handlers.get(event) ?? [])]) {
      callback();
    }
  }
  listeners(event: string): number {
    return this.handlers.get(event)?.size ?? 0;
  }
}

/** The widget manager: models by id, restored or not yet, views it made. */
class FakeManager implements WidgetManagerLike {
  restoredStatus = true;
  restored = new TinySignal();
  models = new Map<string, FakeModel>();
  views: FakeView[] = [];
  add(id: string): FakeModel {
    const model = new FakeModel();
    this.models.set(id, model);
    return model;
  }
  async get_model(id: string): Promise<unknown> {
    const model = this.models.get(id);
    if (!model) {
      throw new Error('widget model not found');
    }
    return model;
  }
  async create_view(): Promise<{ luminoWidget: FakeView }> {
    const view = new FakeView();
    this.views.push(view);
    return { luminoWidget: view };
  }
  /**
   * A kernel restart as jupyterlab-manager 5 handles it: the old models stay, disconnected
   * (their views too: frozen), then the manager restores what the new kernel holds (nothing).
   */
  restart(): void {
    this.restoredStatus = false;
    for (const model of this.models.values()) {
      model.comm_live = false;
      model.trigger('comm_live_update');
    }
    this.restoredStatus = true;
    this.restored.emit();
  }
  /** The page reloaded or the notebook reopened with a new kernel: no model at all. */
  forget(): void {
    this.models.clear();
  }
}

/** Made anew per test: its prototype is what gets guarded, like jupyterlab-manager's class. */
function rendererClass() {
  const calls: IRenderMime.IMimeModel[] = [];
  class Renderer implements RendererLike {
    isDisposed = false;
    widgets: unknown[] = [];
    text = '';
    given: WidgetManagerLike | null = null;
    constructor(_options: unknown, manager?: WidgetManagerLike) {
      if (manager) {
        this.manager = manager;
      }
    }
    set manager(value: WidgetManagerLike) {
      this.given = value;
    }
    async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
      calls.push(model);
      this.text = 'Error displaying widget: model not found';
    }
    addWidget(widget: unknown): void {
      this.widgets.push(widget);
    }
    dispose(): void {
      this.isDisposed = true;
    }
  }
  return { Renderer, calls };
}

/** Records what each renderer shows: a snapshot's HTML, or null once the live view is in. */
function recordingUi() {
  const shown = new Map<RendererLike, string | null>();
  const ui: SnapshotUi = {
    show: (host, html) => void shown.set(host, html),
    clear: host => void shown.set(host, null)
  };
  return { ui, shown };
}

function bundle(id: string | null, html?: string): IRenderMime.IMimeModel {
  const data: Record<string, unknown> = { 'text/plain': 'Monitor' };
  if (id !== null) {
    data[WIDGET_VIEW_MIME] = { version_major: 2, version_minor: 0, model_id: id };
  }
  if (html !== undefined) {
    data['text/html'] = html;
  }
  return { data, metadata: {}, trusted: true, setData: () => undefined } as unknown as IRenderMime.IMimeModel;
}

function setup() {
  const { Renderer, calls } = rendererClass();
  const { ui, shown } = recordingUi();
  expect(guardRendererClass(Renderer, ui)).toBe(true);
  const manager = new FakeManager();
  return { Renderer, calls, shown, manager };
}

describe('a widget bundle with a static snapshot', () => {
  it('reads the snapshot and the model id from the bundle', () => {
    expect(snapshotHtml(bundle('m1', '<b>x</b>'))).toBe('<b>x</b>');
    expect(snapshotHtml(bundle('m1'))).toBeNull();
    expect(modelId(bundle('m1', ''))).toBe('m1');
    expect(modelId(bundle(null, ''))).toBeNull();
  });

  it('shows the live view when the manager has the model, the snapshot until then', async () => {
    const { Renderer, calls, shown, manager } = setup();
    manager.add('m1');
    const renderer = new Renderer({}, manager);
    const rendering = renderer.renderModel(bundle('m1', '<p>pending</p>'));
    expect(shown.get(renderer)).toBe('<p>pending</p>'); // at once, before the model is looked up
    await rendering;
    expect(shown.get(renderer)).toBeNull();
    expect(renderer.widgets).toEqual([manager.views[0]]);
    expect(calls).toEqual([]);
  });

  it('keeps the live view when the same model comes with a newer snapshot, which a restart then shows', async () => {
    const { Renderer, shown, manager } = setup();
    manager.add('m1');
    const renderer = new Renderer({}, manager);
    await renderer.renderModel(bundle('m1', '<p>pending</p>'));
    await renderer.renderModel(bundle('m1', '<p>running</p>'));
    await renderer.renderModel(bundle('m1', '<p>running 40%</p>'));
    expect(manager.views).toHaveLength(1); // no second live view of the same model
    expect(renderer.widgets).toHaveLength(1);
    expect(shown.get(renderer)).toBeNull();
    manager.restart();
    expect(shown.get(renderer)).toBe('<p>running 40%</p>');
    expect(manager.views[0].isDisposed).toBe(true); // no frozen monitor, no dead button
    expect(manager.models.get('m1')?.listeners('comm_live_update')).toBe(0);
    // drawn again (the output re-rendered): the disconnected model gives no new live view
    await renderer.renderModel(bundle('m1', '<p>running 40%</p>'));
    expect(manager.views).toHaveLength(1);
    expect(shown.get(renderer)).toBe('<p>running 40%</p>');
  });

  it('shows the snapshot for a model the manager never heard of (reopened with a new kernel)', async () => {
    const { Renderer, calls, shown, manager } = setup();
    manager.add('m1');
    manager.forget();
    const renderer = new Renderer({}, manager);
    await renderer.renderModel(bundle('m1', '<p>snapshot</p>'));
    expect(shown.get(renderer)).toBe('<p>snapshot</p>');
    expect(calls).toEqual([]);
  });

  it('shows the snapshot, never "model not found", when the kernel no longer has the model', async () => {
    const { Renderer, calls, shown, manager } = setup();
    const renderer = new Renderer({}, manager);
    await renderer.renderModel(bundle('gone', '<p>snapshot</p>'));
    expect(shown.get(renderer)).toBe('<p>snapshot</p>');
    expect(renderer.text).toBe('');
    expect(calls).toEqual([]);
    expect(renderer.widgets).toEqual([]);
  });

  it('tries again once the manager has restored its widgets, if it had not yet', async () => {
    const { Renderer, shown, manager } = setup();
    manager.restoredStatus = false;
    const renderer = new Renderer({}, manager);
    await renderer.renderModel(bundle('m1', '<p>snapshot</p>'));
    expect(shown.get(renderer)).toBe('<p>snapshot</p>');
    manager.add('m1');
    manager.restoredStatus = true;
    manager.restored.emit();
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(manager.views).toHaveLength(1);
    expect(shown.get(renderer)).toBeNull();
  });

  it('keeps the snapshot while there is no manager (a notebook opened without a kernel), then uses the one given', async () => {
    const { Renderer, shown, manager } = setup();
    const renderer = new Renderer({});
    const rendering = renderer.renderModel(bundle('m1', '<p>snapshot</p>'));
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(shown.get(renderer)).toBe('<p>snapshot</p>');
    manager.add('m1');
    renderer.manager = manager; // what jupyterlab-manager does once the kernel is there
    expect(renderer.given).toBe(manager); // the original setter still runs
    await rendering;
    expect(shown.get(renderer)).toBeNull();
    expect(renderer.widgets).toHaveLength(1);
  });

  it('shows the snapshot for a closed view (model id emptied)', async () => {
    const { Renderer, shown, manager } = setup();
    const renderer = new Renderer({}, manager);
    await renderer.renderModel(bundle('', '<p>closed</p>'));
    expect(shown.get(renderer)).toBe('<p>closed</p>');
  });

  it('leaves bundles without HTML to the original renderer', async () => {
    const { Renderer, calls, shown, manager } = setup();
    const renderer = new Renderer({}, manager);
    const plain = bundle('slider');
    await renderer.renderModel(plain);
    expect(calls).toEqual([plain]);
    expect(shown.has(renderer)).toBe(false);
  });

  it('drops an older render that a newer bundle overtook', async () => {
    const { Renderer, shown, manager } = setup();
    manager.add('m1');
    manager.add('m2');
    const renderer = new Renderer({});
    const first = renderer.renderModel(bundle('m1', '<p>one</p>'));
    const second = renderer.renderModel(bundle('m2', '<p>two</p>'));
    renderer.manager = manager;
    await Promise.all([first, second]);
    expect(manager.views).toHaveLength(1);
    expect(shown.get(renderer)).toBeNull();
  });
});

describe('finding the widget renderer', () => {
  it('guards the class behind a rendermime\'s widget-view factory once, through a throwaway renderer', () => {
    const { Renderer } = rendererClass();
    const made: InstanceType<typeof Renderer>[] = [];
    const factory = {
      safe: false,
      mimeTypes: [WIDGET_VIEW_MIME],
      createRenderer: (options: unknown) => {
        const r = new Renderer(options);
        made.push(r);
        return r as unknown as IRenderMime.IRenderer;
      }
    };
    const { ui } = recordingUi();
    const original = Renderer.prototype.renderModel;
    expect(guardWidgetViews({ getFactory: () => factory }, ui)).toBe(true);
    expect(Renderer.prototype.renderModel).not.toBe(original);
    const guarded = Renderer.prototype.renderModel;
    expect(guardWidgetViews({ getFactory: () => factory }, ui)).toBe(true);
    expect(Renderer.prototype.renderModel).toBe(guarded);
    expect(made.every(r => r.isDisposed)).toBe(true);
  });

  it('changes nothing without a widget manager or for a renderer of unknown shape', () => {
    const { ui } = recordingUi();
    expect(guardWidgetViews({ getFactory: () => undefined }, ui)).toBe(false);
    class Odd {
      async renderModel(): Promise<void> {}
    }
    const original = Odd.prototype.renderModel;
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const factory = { safe: false, mimeTypes: [WIDGET_VIEW_MIME], createRenderer: () => new Odd() as unknown as IRenderMime.IRenderer };
    (Odd.prototype as unknown as { dispose(): void }).dispose = () => undefined;
    expect(guardWidgetViews({ getFactory: () => factory }, ui)).toBe(false);
    expect(Odd.prototype.renderModel).toBe(original);
    warn.mockRestore();
  });
});
