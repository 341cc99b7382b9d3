/** The FLAME icon; `jp-icon3` makes it follow the light or dark theme. */

import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<path class="jp-icon3" fill="#616161" d="M13.5 1.5s.9 3.1-1.6 6.3C9.7 10.6 7 12.6 7 16.2 7 19.4 9.4 22 12.5 22S18 19.6 18 16.4c0-2.7-1.4-4.3-2.3-5.6-.3 1.6-1.1 2.7-2.1 3.2.6-3.7-.4-9.2-.1-12.5zM12.4 20.3c-1.4 0-2.5-1.1-2.5-2.6 0-1.7 1.4-2.6 2.3-4 .4 1.2 1.5 1.8 1.9 1.2.4.9.8 1.6.8 2.6 0 1.6-1.1 2.8-2.5 2.8z"/>
</svg>`;

export const flameIcon = new LabIcon({ name: 'flame-lab:flame', svgstr: svg });
