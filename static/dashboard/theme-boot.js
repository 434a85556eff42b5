// A classic script in <head>, before the stylesheet (not a module: modules run after the
// first paint). It puts the remembered theme on <html> so the page never flashes the other
// one. No choice remembered: prefers-color-scheme decides (dashboard.css, light-dark()).
try {
  const theme = localStorage.getItem("dashboard.theme");
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
} catch {
  // storage unavailable (private mode, blocked): follow the system
}
