// The zone and line editor: on a still of the camera, draw or move polygons and lines, flip a
// line's "in" side, see the saved ones count live, then copy the YAML or save it into the
// config file (the daemon checks it as `edged check` does, keeps a backup and reloads).
"use strict";

(() => {
  const { api, el, withToken, problem, header, cameraName } = window.edged;
  const SVG = "http://www.w3.org/2000/svg";
  const UNIT = { left_to_right: [1, 0], right_to_left: [-1, 0], top_to_bottom: [0, 1], bottom_to_top: [0, -1] };
  const OPPOSITE = { left_to_right: "right_to_left", right_to_left: "left_to_right", top_to_bottom: "bottom_to_top", bottom_to_top: "top_to_bottom" };

  const name = cameraName();
  const base = `/cameras/${encodeURIComponent(name)}`;
  const img = document.getElementById("still-image");
  const svg = document.getElementById("shapes");
  const hint = document.getElementById("hint");
  const defaultHint = hint.textContent;

  // shapes in picture pixels (w × h); lines: {kind, name, points: [[x, y], [x, y]], in}
  let size = null;
  let shapes = [];
  let selected = null;
  let drawing = null; // {kind, points} while a new shape is being clicked in
  let drag = null; // {shape, index}
  let live = { lines: {}, zones: {} };
  let loaded = false;

  function sub(a, b) { return [a[0] - b[0], a[1] - b[1]]; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1]; }

  // the analytics' rule (edged/analytics/lines.py): "in" is the side of the line an object
  // moves into along the image direction named by `in`
  function inSide(line) {
    const d = sub(line.points[1], line.points[0]);
    const length = Math.hypot(d[0], d[1]) || 1;
    const normal = [-d[1] / length, d[0] / length];
    const sign = dot(normal, UNIT[line.in]) > 0 ? 1 : -1;
    return [sign * normal[0], sign * normal[1]];
  }

  // the direction whose side is `side`, for a line at its current angle (never parallel)
  function directionToward(line, side) {
    const d = sub(line.points[1], line.points[0]);
    const normal = [-d[1], d[0]];
    const s = dot(normal, side) >= 0 ? 1 : -1;
    const toward = [s * normal[0], s * normal[1]];
    return Object.keys(UNIT).reduce((best, k) => (dot(UNIT[k], toward) > dot(UNIT[best], toward) ? k : best));
  }

  function defaultDirection(points) {
    const dx = Math.abs(points[1][0] - points[0][0]);
    const dy = Math.abs(points[1][1] - points[0][1]);
    return dy >= dx ? "left_to_right" : "top_to_bottom";
  }

  function freeName(kind) {
    const taken = new Set(shapes.filter((s) => s.kind === kind).map((s) => s.name));
    for (let i = 1; ; i++) if (!taken.has(`${kind}_${i}`)) return `${kind}_${i}`;
  }

  function svgNode(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function pictureXY(event) {
    const r = svg.getBoundingClientRect();
    const x = ((event.clientX - r.left) / r.width) * size[0];
    const y = ((event.clientY - r.top) / r.height) * size[1];
    return [Math.min(Math.max(x, 0), size[0]), Math.min(Math.max(y, 0), size[1])];
  }

  // -- drawing ----------------------------------------------------------------------------

  function render() {
    drawShapes();
    lists();
  }

  function drawShapes() {
    if (!size) return;
    svg.setAttribute("viewBox", `0 0 ${size[0]} ${size[1]}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const unit = Math.min(size[0], size[1]);
    const stroke = Math.max(2, unit / 240);
    const r = Math.max(5, unit / 90);
    const font = Math.max(12, unit / 32);
    svg.replaceChildren();
    for (const shape of shapes) {
      const chosen = shape === selected;
      const group = svgNode("g", { "data-name": shape.name, "data-kind": shape.kind });
      const pts = shape.points.map((p) => p.join(",")).join(" ");
      const cls = (shape.kind === "zone" ? "zone" : "line") + (chosen ? " selected" : "");
      const body = shape.kind === "zone"
        ? svgNode("polygon", { points: pts, class: cls, "stroke-width": stroke })
        : svgNode("polyline", { points: pts, class: cls, "stroke-width": stroke * 1.5, fill: "none" });
      body.addEventListener("pointerdown", (e) => { if (!drawing) { e.stopPropagation(); select(shape); } });
      group.append(body);
      let at = shape.points[0];
      if (shape.kind === "line") {
        const mid = [(shape.points[0][0] + shape.points[1][0]) / 2, (shape.points[0][1] + shape.points[1][1]) / 2];
        const side = inSide(shape);
        const reach = unit / 10;
        const tip = [mid[0] + side[0] * reach, mid[1] + side[1] * reach];
        group.append(svgNode("line", { x1: mid[0], y1: mid[1], x2: tip[0], y2: tip[1], class: "arrow", "stroke-width": stroke }));
        const wing = reach / 3;
        const back = [-side[0] * wing, -side[1] * wing];
        const across = [-side[1] * wing * 0.6, side[0] * wing * 0.6];
        const head = [tip, [tip[0] + back[0] + across[0], tip[1] + back[1] + across[1]], [tip[0] + back[0] - across[0], tip[1] + back[1] - across[1]]];
        group.append(svgNode("polygon", { points: head.map((p) => p.join(",")).join(" "), class: "arrow" }));
        const label = svgNode("text", { x: tip[0] + side[0] * font * 0.3, y: tip[1] + side[1] * font * 0.3 + font / 3, "font-size": font * 0.8, "stroke-width": font / 8 });
        label.textContent = "in";
        group.append(label);
        at = mid;
      }
      const title = svgNode("text", { x: at[0] + r, y: at[1] - r, "font-size": font, "stroke-width": font / 8 });
      title.textContent = shape.name;
      group.append(title);
      if (chosen) {
        shape.points.forEach((p, index) => {
          const handle = svgNode("circle", { cx: p[0], cy: p[1], r, class: "handle", "stroke-width": stroke / 2, "data-index": index });
          handle.addEventListener("pointerdown", (e) => {
            e.stopPropagation();
            drag = { shape, index, side: shape.kind === "line" ? inSide(shape) : null };
            svg.setPointerCapture(e.pointerId);
          });
          group.append(handle);
        });
      }
      svg.append(group);
    }
    if (drawing) {
      for (const p of drawing.points) svg.append(svgNode("circle", { cx: p[0], cy: p[1], r, class: "handle" }));
      if (drawing.points.length > 1) {
        svg.append(svgNode("polyline", { points: drawing.points.map((p) => p.join(",")).join(" "), class: drawing.kind, fill: "none", "stroke-width": stroke }));
      }
    }
  }

  function countText(shape) {
    if (shape.kind === "line") {
      const known = live.lines[shape.name];
      return known ? `in ${known.in} · out ${known.out}` : "not saved";
    }
    const known = live.zones[shape.name];
    return known ? `${known.total} inside` : "not saved";
  }

  // the counts change every second; the list is not rebuilt for them (a name being typed
  // would lose its focus)
  function updateCounts() {
    for (const kind of ["line", "zone"]) {
      const items = document.getElementById(`${kind}-list`).children;
      const mine = shapes.filter((s) => s.kind === kind);
      mine.forEach((shape, i) => { if (items[i]) items[i].querySelector(".count").textContent = countText(shape); });
    }
  }

  function lists() {
    for (const kind of ["line", "zone"]) {
      const list = document.getElementById(`${kind}-list`);
      list.replaceChildren(...shapes.filter((s) => s.kind === kind).map((shape) => {
        const input = el("input", { value: shape.name, "aria-label": `${kind} name`, pattern: "[A-Za-z0-9_-]+" });
        input.addEventListener("change", () => {
          const wanted = input.value.trim();
          if (!/^[A-Za-z0-9_-]+$/.test(wanted) || shapes.some((s) => s !== shape && s.kind === kind && s.name === wanted)) {
            input.value = shape.name;
            result(false, `a ${kind} name: letters, digits, _ and -, not used by another ${kind}`);
            return;
          }
          shape.name = wanted;
          render();
        });
        input.addEventListener("focus", () => select(shape, false));
        const item = el("li", { class: shape === selected ? "selected" : "" }, input, el("span", { class: "count", text: countText(shape) }));
        item.shape = shape;
        return item;
      }));
    }
  }

  function select(shape, rebuildLists = true) {
    selected = shape;
    document.getElementById("flip").disabled = !shape || shape.kind !== "line";
    document.getElementById("delete").disabled = !shape;
    if (rebuildLists) { render(); return; }
    drawShapes();
    for (const item of document.querySelectorAll("ul.shapes li")) item.classList.toggle("selected", item.shape === shape);
  }

  // -- the pointer ------------------------------------------------------------------------

  svg.addEventListener("pointerdown", (e) => {
    if (!size) return;
    if (!drawing) { select(null); return; }
    const p = pictureXY(e);
    if (drawing.kind === "zone" && drawing.points.length >= 3) {
      const first = drawing.points[0];
      const near = Math.min(size[0], size[1]) / 40;
      if (Math.hypot(p[0] - first[0], p[1] - first[1]) < near) { finishZone(); return; }
    }
    drawing.points.push(p);
    if (drawing.kind === "line" && drawing.points.length === 2) {
      const line = { kind: "line", name: freeName("line"), points: drawing.points, in: defaultDirection(drawing.points) };
      shapes.push(line);
      stopDrawing();
      select(line);
      return;
    }
    document.getElementById("finish").hidden = !(drawing.kind === "zone" && drawing.points.length >= 3);
    render();
  });

  svg.addEventListener("pointermove", (e) => {
    if (!drag) return;
    drag.shape.points[drag.index] = pictureXY(e);
    const [a, b] = drag.shape.points;
    if (drag.shape.kind === "line" && (a[0] !== b[0] || a[1] !== b[1])) {
      drag.shape.in = directionToward(drag.shape, drag.side); // the arrow keeps its side
    }
    drawShapes();
  });

  svg.addEventListener("pointerup", () => { drag = null; });

  function startDrawing(kind) {
    drawing = { kind, points: [] };
    select(null);
    document.getElementById(`add-${kind}`).classList.add("active");
    hint.textContent = kind === "line"
      ? "click the line's two ends"
      : "click the zone's corners; click the first one again (or finish zone) to close it";
    render();
  }

  function stopDrawing() {
    drawing = null;
    for (const k of ["line", "zone"]) document.getElementById(`add-${k}`).classList.remove("active");
    document.getElementById("finish").hidden = true;
    hint.textContent = defaultHint;
  }

  function finishZone() {
    if (!drawing || drawing.points.length < 3) return;
    const zone = { kind: "zone", name: freeName("zone"), points: drawing.points };
    shapes.push(zone);
    stopDrawing();
    select(zone);
  }

  document.getElementById("add-line").addEventListener("click", () => startDrawing("line"));
  document.getElementById("add-zone").addEventListener("click", () => startDrawing("zone"));
  document.getElementById("finish").addEventListener("click", finishZone);
  document.getElementById("flip").addEventListener("click", () => {
    if (selected?.kind !== "line") return;
    selected.in = OPPOSITE[selected.in];
    render();
  });
  document.getElementById("delete").addEventListener("click", () => {
    shapes = shapes.filter((s) => s !== selected);
    select(null);
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT") return;
    if (e.key === "Escape") { stopDrawing(); render(); }
    if (e.key === "Enter") finishZone();
    if ((e.key === "Delete" || e.key === "Backspace") && selected) document.getElementById("delete").click();
  });

  // -- the YAML, the save -----------------------------------------------------------------

  function body(save) {
    const rel = (p) => [+(p[0] / size[0]).toFixed(4), +(p[1] / size[1]).toFixed(4)];
    const zones = {};
    const lines = {};
    for (const s of shapes) {
      if (s.kind === "zone") zones[s.name] = s.points.map(rel);
      else lines[s.name] = { points: s.points.map(rel), in: s.in };
    }
    return JSON.stringify({ zones, lines, save });
  }

  function result(ok, text) {
    const box = document.getElementById("result");
    box.hidden = false;
    box.className = `result ${ok ? "ok" : "bad"}`;
    box.textContent = text;
  }

  async function send(save) {
    if (!size) return null;
    const answer = await api(`/api/cameras/${encodeURIComponent(name)}/geometry`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: body(save),
    });
    const yaml = document.getElementById("yaml");
    yaml.hidden = false;
    yaml.value = answer.yaml || "";
    return answer;
  }

  document.getElementById("copy").addEventListener("click", async () => {
    try {
      await send(false);
      const yaml = document.getElementById("yaml");
      yaml.select();
      if (navigator.clipboard) await navigator.clipboard.writeText(yaml.value).catch(() => {});
      result(true, `YAML for cameras.${name} below (copied where the browser allows)`);
    } catch (err) { result(false, String(err)); }
  });

  document.getElementById("save").addEventListener("click", async () => {
    const button = document.getElementById("save");
    button.disabled = true;
    result(true, "checking, saving and reloading…");
    try {
      const answer = await send(true);
      if (answer.ok) {
        const r = answer.reload || {};
        const changed = ["added", "removed", "restarted", "updated"].filter((k) => (r[k] || []).length).map((k) => `${k}: ${r[k].join(", ")}`);
        result(true, `saved; backup ${answer.backup}\nreloaded (${changed.join("; ") || "no changes"})`);
      } else {
        result(false, `not saved:\n${(answer.errors || []).join("\n")}`);
      }
    } catch (err) {
      result(false, String(err));
    } finally {
      button.disabled = false;
    }
  });

  // -- the still and the live counts ------------------------------------------------------

  function still() {
    img.src = withToken(`${base}/latest.jpg?raw=1&t=${Date.now()}`);
  }
  document.getElementById("still").addEventListener("click", still);

  async function tick() {
    let state;
    try { state = await api("/api/state"); } catch (err) { problem(String(err)); return; }
    header(state);
    const cam = state.cameras[name];
    if (!cam) { problem(`camera ${name} is no longer in the config`); return; }
    if (!state.editable) document.getElementById("save").disabled = true;
    live = {
      lines: Object.fromEntries(cam.lines.map((l) => [l.name, l])),
      zones: Object.fromEntries(cam.zones.map((z) => [z.name, z])),
    };
    if (!cam.size) {
      problem(`waiting for a picture from ${name} (${cam.state}${cam.reason ? ": " + cam.reason : ""})`);
      return;
    }
    problem(null);
    if (!loaded) {
      const fresh = !size;
      size = cam.size;
      const px = (p) => [p[0] * size[0], p[1] * size[1]];
      shapes = [
        ...cam.zones.filter((z) => z.polygon).map((z) => ({ kind: "zone", name: z.name, points: z.polygon.map(px) })),
        ...cam.lines.filter((l) => l.points).map((l) => ({ kind: "line", name: l.name, points: l.points.map(px), in: l.in_direction })),
      ];
      loaded = true;
      if (fresh) still();
      render();
      document.body.dataset.ready = "1";
    }
    updateCounts();
  }

  document.getElementById("camera").textContent = name;
  document.getElementById("camera-link").href = withToken(base);
  document.title = `edged: edit ${name}`;
  tick();
  setInterval(tick, 1000);
})();
