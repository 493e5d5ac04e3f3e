// headwater viewer: colour chips, the sample page's SVG overlay (drawn from the droplet JSON), toggles, zoom.
// No inline script anywhere (the Content-Security-Policy forbids it): this file finds its elements by id.
// Text from droplets is only ever set with textContent / setAttribute, never parsed as markup.
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";

  function paintChips() {
    document.querySelectorAll(".class-chip[data-colour]").forEach(function (el) {
      el.style.borderColor = el.dataset.colour;
      el.style.setProperty("--chip", el.dataset.colour);
    });
  }

  function node(name, attrs, parent) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
    if (parent) { parent.appendChild(el); }
    return el;
  }

  function fmt(conf) { return conf === undefined || conf === null ? "" : " " + Number(conf).toFixed(2); }

  function drawOverlay(svg, droplet, colours, width, height) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var unit = Math.max(width, height) / 400;  // stroke and text size relative to the image
    var classes = droplet.classes || {};
    Object.keys(classes).forEach(function (name) {
      var colour = colours[name] || "#ff00ff";
      var groups = {};
      function group(kind) {
        if (!groups[kind]) {
          groups[kind] = node("g", {"data-class": name, "data-kind": kind}, svg);
        }
        return groups[kind];
      }
      var cls = classes[name] || {};
      var items = (cls.instances || []).map(function (i) { return {inst: i, multi: false}; })
        .concat((cls.multiInstances || []).map(function (i) { return {inst: i, multi: true}; }));
      items.forEach(function (item) {
        var inst = item.inst;
        var box = inst.boundingBox;
        var seg = inst.segmentation;
        if (seg && seg.mask) {
          var d = seg.mask.map(function (poly) {
            return "M" + poly.map(function (p) { return (p[0] * width) + " " + (p[1] * height); }).join(" L") + " Z";
          }).join(" ");
          node("path", {d: d, fill: colour, "fill-opacity": 0.35, stroke: colour, "stroke-width": unit,
                        "fill-rule": "evenodd"}, group("mask"));
        }
        var x1, y1;
        if (box && box.rectangle) {
          var r = box.rectangle;
          x1 = r[0][0] * width; y1 = r[0][1] * height;
          var attrs = {x: x1, y: y1, width: (r[1][0] - r[0][0]) * width, height: (r[1][1] - r[0][1]) * height,
                       fill: "none", stroke: colour, "stroke-width": 2 * unit};
          if (item.multi) { attrs["stroke-dasharray"] = (6 * unit) + " " + (3 * unit); }
          node("rect", attrs, group("box"));
        }
        if (inst.keypoints) {
          Object.keys(inst.keypoints).forEach(function (kp) {
            var k = inst.keypoints[kp];
            if (!k || !k.point) { return; }
            var c = node("circle", {cx: k.point[0] * width, cy: k.point[1] * height, r: 3 * unit,
                                    fill: k.occluded ? "none" : colour, stroke: colour, "stroke-width": unit},
                         group("keypoints"));
            var t = node("title", {}, c);
            t.textContent = kp + (k.occluded ? " (occluded)" : "") + fmt(k.confidence);
          });
        }
        if (x1 === undefined && seg && seg.mask && seg.mask[0] && seg.mask[0][0]) {
          x1 = seg.mask[0][0][0] * width; y1 = seg.mask[0][0][1] * height;
        }
        if (x1 !== undefined) {
          var label = name + (item.multi && inst.count ? " ×" + inst.count : "") +
            fmt(box && box.confidence !== undefined ? box.confidence : (seg ? seg.confidence : undefined));
          var size = 11 * unit;
          var g = group("label");
          var bg = node("rect", {x: x1, y: Math.max(0, y1 - size * 1.3), height: size * 1.3,
                                 width: size * 0.62 * label.length + 4 * unit, fill: colour}, g);
          bg.setAttribute("fill-opacity", "0.85");
          var text = node("text", {x: x1 + 2 * unit, y: Math.max(size, y1 - size * 0.3), "font-size": size,
                                   "font-family": "sans-serif", fill: "#fff"}, g);
          text.textContent = label;
        }
      });
    });
    applyToggles();
  }

  function applyToggles() {
    var offClasses = {}, offKinds = {};
    document.querySelectorAll("input.toggle-class").forEach(function (t) { if (!t.checked) { offClasses[t.dataset.class] = true; } });
    document.querySelectorAll("input.toggle-kind").forEach(function (t) { if (!t.checked) { offKinds[t.dataset.kind] = true; } });
    document.querySelectorAll("#overlay g[data-class]").forEach(function (g) {
      var hide = offClasses.hasOwnProperty(g.dataset.class) || offKinds.hasOwnProperty(g.dataset.kind);
      g.classList.toggle("hidden", hide);
      g.style.display = hide ? "none" : "";
    });
  }

  function setupSample() {
    var img = document.getElementById("sample-image");
    var svg = document.getElementById("overlay");
    var pre = document.getElementById("droplet-json");
    if (!img || !svg || !pre) { return; }
    var droplet;
    try { droplet = JSON.parse(pre.textContent); } catch (e) { return; }
    var colours = {};
    document.querySelectorAll("input.toggle-class").forEach(function (t) { colours[t.dataset.class] = t.dataset.colour; });
    function draw() {
      var w = img.naturalWidth || 1000, h = img.naturalHeight || 1000;
      if (w < 400 && h < 400) { img.classList.add("small"); }  // shown enlarged: keep its pixels sharp
      drawOverlay(svg, droplet, colours, w, h);
      document.body.classList.add("overlay-ready");
    }
    if (img.complete) { draw(); } else { img.addEventListener("load", draw); img.addEventListener("error", draw); }
    document.querySelectorAll("input.toggle-class, input.toggle-kind").forEach(function (t) {
      t.addEventListener("change", applyToggles);
    });

    var zoom = 1;
    var zoomable = document.getElementById("zoomable");
    var level = document.getElementById("zoom-level");
    function setZoom(z) {
      zoom = Math.min(16, Math.max(0.125, z));
      zoomable.style.transform = "scale(" + zoom + ")";
      if (level) { level.textContent = Math.round(zoom * 100) + "%"; }
    }
    function on(id, f) { var el = document.getElementById(id); if (el) { el.addEventListener("click", f); } }
    on("zoom-in", function () { setZoom(zoom * 1.5); });
    on("zoom-out", function () { setZoom(zoom / 1.5); });
    on("zoom-reset", function () { setZoom(1); });
    document.addEventListener("keydown", function (e) {
      if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) { return; }
      var link = null;
      if (e.key === "ArrowLeft") { link = document.getElementById("prev-sample"); }
      if (e.key === "ArrowRight") { link = document.getElementById("next-sample"); }
      if (e.key === "+" || e.key === "=") { setZoom(zoom * 1.5); }
      if (e.key === "-") { setZoom(zoom / 1.5); }
      if (e.key === "0") { setZoom(1); }
      if (link) { window.location.href = link.href; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    paintChips();
    setupSample();
  });
})();
