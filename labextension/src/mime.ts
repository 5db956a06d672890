/**
 * The MIME renderer extension: `application/vnd.workbench.plan+json` outputs are drawn
 * as an interactive tree. Its rank (0) puts it ahead of the `text/html` (rank 50) and
 * `text/plain` forms the same output bundle carries for other front ends.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { rendererFactory } from './plan';
import { PLAN_MIME_TYPE } from './schema';

const extension: IRenderMime.IExtension = {
  id: 'workbench-jupyterlab:plan-renderer',
  description: `Renders ${PLAN_MIME_TYPE} (workbench EXPLAIN plans) as an interactive tree.`,
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

export default extension;
