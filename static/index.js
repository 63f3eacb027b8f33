// Entry point loaded by TensorBoard's plugin_entry.html as ./index.js
// (served from this folder). TensorBoard calls render() once; siblings are
// imported as ./static/<file>.
import { start } from "./static/app.js";

export function render() {
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = "./static/style.css";
  document.head.append(style);
  const meta = document.createElement("meta");
  meta.name = "color-scheme";
  meta.content = "light dark";
  document.head.append(meta);
  return start(document.body);
}
