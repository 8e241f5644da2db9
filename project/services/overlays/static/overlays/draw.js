/*
 * Drawing both OBS pages share: window.overlayDraw.
 * Drawn icons, not emoji: an OBS machine may have no colour emoji font.
 */
(function () {
  "use strict";

  const ICONS = {
    gift: "M3 8h18v4H3zM5 12h14v9H5zM11 8h2v13h-2zM12 8C10 4 6 4 7 7c.5 1.2 3 1 5 1zm0 0c2-4 6-4 5-1-.5 1.2-3 1-5 1z",
    follow: "M9 4a4 4 0 1 1 0 8 4 4 0 0 1 0-8zM1 20c0-4 4-6 8-6s8 2 8 6zM19 7h2v3h3v2h-3v3h-2v-3h-3v-2h3z",
    subscribe: "M12 2l3 6.6 7 .8-5.2 4.8 1.5 7L12 17.6 5.7 21.2l1.5-7L2 9.4l7-.8z",
    share: "M14 4l8 7-8 7v-4c-5 0-9 1.5-12 6 1-6 4-11 12-12z",
    comment: "M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H10l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z",
    like: "M12 21L3.5 12.6A5.2 5.2 0 0 1 12 5.8a5.2 5.2 0 0 1 8.5 6.8z",
    join: "M10 3h9a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2h-9v-2h9V5h-9zM9 7l5 5-5 5v-3.5H2v-3h7z",
    other: "M12 2l2.5 7.5L22 12l-7.5 2.5L12 22l-2.5-7.5L2 12l7.5-2.5z",
  };
  const SVG = "http://www.w3.org/2000/svg";

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text; // viewer text is never parsed as HTML
    return el;
  }

  // An icon from its SVG path (24x24).
  function svg(d) {
    const el = document.createElementNS(SVG, "svg");
    el.setAttribute("viewBox", "0 0 24 24");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    el.append(path);
    return el;
  }

  function drawnIcon(type) {
    return svg(Object.hasOwn(ICONS, type) ? ICONS[type] : ICONS.other);
  }

  // The gift's or viewer's picture, the drawn icon where there is none or it fails to load.
  function icon(type, image) {
    const box = element("div", "icon");
    if (image) {
      const img = new Image();
      img.alt = "";
      img.addEventListener("error", () => box.replaceChildren(drawnIcon(type)));
      img.src = image;
      box.append(img);
    } else {
      box.append(drawnIcon(type));
    }
    return box;
  }

  window.overlayDraw = Object.freeze({
    element,
    svg,
    icon,
    hasIcon: (type) => Object.hasOwn(ICONS, type),
  });
})();
