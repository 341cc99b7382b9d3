import { ApiError, FlameApi } from '../api';
import { FakeServer, json } from './fakeServer';

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected the call to fail');
}

describe('FlameApi', () => {
  it('turns a flame_lab error body into an ApiError with its class, message and hint', async () => {
    const server = new FakeServer().on('POST analyses', () =>
      json({ error: 'DraftError', message: 'No %%flame cells.', hint: 'Add one.' }, 400)
    );
    const error = await failure(server.api().submit({ notebook: {} }));
    expect(error.kind).toBe('server');
    expect(error.errorClass).toBe('DraftError');
    expect(error.message).toBe('No %%flame cells.');
    expect(error.hint).toBe('Add one.');
    expect(error.status).toBe(400);
  });

  it('says the Jupyter session expired on 403 without a flame_lab body', async () => {
    const server = new FakeServer().on('GET status', () => new Response('Forbidden', { status: 403 }));
    const error = await failure(server.api().status());
    expect(error.kind).toBe('auth');
    expect(error.hint).toMatch(/reload/i);
  });

  it('says the server extension is missing on a plain 404', async () => {
    const error = await failure(new FakeServer().api().sandbox('start'));
    expect(error.kind).toBe('missing');
  });

  it('says the server is unreachable when the request itself fails', async () => {
    const server = new FakeServer();
    server.down = true;
    const error = await failure(server.api().version());
    expect(error.kind).toBe('unreachable');
    expect(error.hint).not.toBe('');
  });

  it('treats a 200 answer that is not JSON as a missing extension', async () => {
    const server = new FakeServer().on('GET version', () => new Response('<html></html>', { status: 200 }));
    const error = await failure(server.api().version());
    expect(error.kind).toBe('missing');
  });

  it('gives a generic hint for a server failure without a body', async () => {
    const server = new FakeServer().on('GET nodes', () => new Response('', { status: 500 }));
    const error = await failure(server.api().nodes());
    expect(error.kind).toBe('server');
    expect(error.message).toMatch(/HTTP 500/);
  });

  it('never repeats the passphrase of a failed submission in the error', async () => {
    const server = new FakeServer().on('POST analyses', () => new Response('', { status: 500 }));
    const error = await failure(server.api().submit({ notebook: {}, passphrase: 'hunter2-secret' }));
    expect(`${error.message} ${error.hint} ${String(error)}`).not.toContain('hunter2-secret');
  });

  it('encodes analysis ids in paths and passes log filters as query parameters', async () => {
    const server = new FakeServer();
    const api = server.api('p1');
    await api.analysis('a/b c');
    await api.logs('x1', 'charite', 'warn');
    expect(server.calls[0].path).toBe('analyses/a%2Fb%20c');
    const logs = server.calls[1];
    expect(logs.path).toBe('analyses/x1/logs');
    expect(Object.fromEntries(logs.query)).toEqual({ node: 'charite', level: 'warn', profile: 'p1' });
  });

  it('sends JSON bodies with a JSON content type', async () => {
    let contentType: string | null = null;
    const api = new FlameApi(async (_path, init) => {
      contentType = new Headers(init.headers).get('Content-Type');
      return json({ analysis: { id: 'a' } }, 202);
    });
    await api.cancel('a');
    expect(contentType).toBe('application/json');
  });
});
