/** The front end's own version and REST API number, checked against the server's on connect. */

import type { VersionInfo } from './types';

export const FRONTEND_VERSION = '0.1.0';
export const FRONTEND_API = 1;

/** A visible warning when the two halves disagree, or null when they match. */
export function versionWarning(server: VersionInfo): string | null {
  if (server.api !== FRONTEND_API) {
    return (
      `The flame_lab server speaks REST API ${server.api} but this JupyterLab extension ` +
      `speaks API ${FRONTEND_API}: some actions may fail. Install matching versions ` +
      `(server ${server.version}, extension ${FRONTEND_VERSION}) and restart JupyterLab.`
    );
  }
  if (server.version !== FRONTEND_VERSION) {
    return (
      `The flame_lab server is version ${server.version} but this JupyterLab extension is ` +
      `${FRONTEND_VERSION}. Reinstall flame-lab so both halves match, then reload the page.`
    );
  }
  return null;
}
