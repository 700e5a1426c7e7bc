// What the views share with the shell: the toast, and hooks the shell fills in (re-poll now,
// mark the node unreachable) so the views need not import app.js.

import { Unreachable } from './api.js';
import { t } from './i18n.js';

export const hooks = {
  refresh: () => {},
  unreachable: () => {},
};

let timer = null;

export function toast(message, kind = 'ok') {
  const el = document.querySelector('[data-testid="toast"]');
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => {
    el.hidden = true;
  }, kind === 'error' ? 9000 : 4000);
}

// A failed action: an unreachable node goes to the banner, an API error to the toast.
export function report(err) {
  if (err instanceof Unreachable) hooks.unreachable();
  else toast(t('common.error', { message: err.message }), 'error');
}
