// The dark-mode toggle beside the prefers-color-scheme default. The choice is remembered in
// localStorage under THEME_KEY (read before the first paint by theme-boot.js); a choice that
// equals what the system shows anyway is forgotten, so the page follows the system again.

export const THEME_KEY = "dashboard.theme";

/** "light" or "dark": the remembered choice, else the system's. */
export function effectiveTheme(stored, systemDark) {
  if (stored === "light" || stored === "dark") return stored;
  return systemDark ? "dark" : "light";
}

/** The choice to remember after a toggle: the other theme, or null when the system shows it. */
export function toggledChoice(stored, systemDark) {
  const next = effectiveTheme(stored, systemDark) === "dark" ? "light" : "dark";
  return next === (systemDark ? "dark" : "light") ? null : next;
}

/** The toggle button (aria-pressed: dark on), kept in step with the system and other tabs. */
export class ThemeToggle {
  /**
   * @param {object} o
   * @param {HTMLElement} o.root <html>; gets data-theme when a choice is remembered
   * @param {HTMLButtonElement} o.button
   * @param {{getItem: Function, setItem: Function, removeItem: Function}} o.storage
   * @param {MediaQueryList} o.media matchMedia("(prefers-color-scheme: dark)")
   * @param {EventTarget} [o.window] for "storage" events from other tabs
   */
  constructor({ root, button, storage, media, window: win }) {
    Object.assign(this, { root, button, storage, media });
    button.addEventListener("click", () => this.toggle());
    media.addEventListener?.("change", () => this.draw());
    win?.addEventListener("storage", (event) => {
      if (event.key === THEME_KEY) this.draw();
    });
    this.draw();
  }

  /** The remembered choice, or null. */
  get stored() {
    try {
      return this.storage.getItem(THEME_KEY);
    } catch {
      return this.root.dataset.theme ?? null;
    }
  }

  /** Called on a click: switch, remember (or forget) the choice, redraw. */
  toggle() {
    const choice = toggledChoice(this.stored, this.media.matches);
    try {
      if (choice) this.storage.setItem(THEME_KEY, choice);
      else this.storage.removeItem(THEME_KEY);
    } catch {
      // storage unavailable: the choice lasts for this page only
    }
    this.draw(choice);
  }

  /** @private */
  draw(choice = this.stored) {
    if (choice === "light" || choice === "dark") this.root.dataset.theme = choice;
    else delete this.root.dataset.theme;
    const dark = effectiveTheme(choice, this.media.matches) === "dark";
    this.button.setAttribute("aria-pressed", String(dark));
  }
}
