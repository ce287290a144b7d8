// edged's web console: the camera grid and the camera page. Plain JavaScript, no build step;
// the editor (editor.js) uses the helpers exported on window.edged.
"use strict";

(() => {
  // a token given once as ?token= is kept for this tab: the API calls send it as a bearer,
  // pictures (which cannot send headers) as ?token=
  const given = new URLSearchParams(location.search).get("token");
  if (given) sessionStorage.setItem("edged-token", given);
  const token = sessionStorage.getItem("edged-token");

  function withToken(url) {
    if (!token) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  async function api(path, options = {}) {
    const headers = { ...(options.headers || {}) };
    if (token) headers.Authorization = "Bearer " + token;
    const answer = await fetch(path, { ...options, headers, cache: "no-store" });
    const text = await answer.text();
    let body;
    try { body = JSON.parse(text); } catch (_) { body = { errors: [text.trim()] }; }
    if (!answer.ok && answer.status !== 422) {
      const why = (body.errors || []).join("; ") || answer.statusText;
      throw new Error(`${path}: HTTP ${answer.status}: ${why}`);
    }
    return body;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function problem(message) {
    const p = document.getElementById("problem");
    if (!p) return;
    p.hidden = !message;
    p.textContent = message || "";
  }

  function badge(cam) {
    const kind = cam.ok ? "ok" : cam.state === "connecting" || cam.state === "reconnecting" ? "warn" : "bad";
    return el("span", { class: `badge ${kind}`, text: cam.state });
  }

  // what a camera without a picture says: the state and its reason
  function waiting(cam) {
    if (cam.ok && cam.size) return null;
    if (cam.ok) return ["waiting for the first frame", ""];
    if (cam.state === "ended") return null;
    const title = cam.running ? (cam.state === "reconnecting" ? "reconnecting" : "no signal") : "not running";
    return [title, cam.reason || cam.state];
  }

  function showPlaceholder(box, cam) {
    const why = waiting(cam);
    box.hidden = !why;
    if (!why) return;
    box.replaceChildren(el("strong", { text: why[0] }), el("span", { text: why[1] }));
  }

  function header(state) {
    document.getElementById("device").textContent = state.device;
    const nav = document.getElementById("links");
    const links = [["cameras", "/"]];
    if (state.links.metrics) links.push(["metrics", state.links.metrics]);
    if (state.links.healthz) links.push(["health", state.links.healthz]);
    nav.replaceChildren(...links.map(([text, href]) => el("a", { href: withToken(href), text })));
  }

  function counts(cam) {
    const parts = [];
    for (const line of cam.lines) parts.push(`${line.name}: in ${line.in} · out ${line.out}`);
    for (const zone of cam.zones) parts.push(`${zone.name}: ${zone.total} inside`);
    return parts.join("   ") || "no zones or lines";
  }

  // a picture refreshed by loading the next one beside it, so it never flickers
  function refresher(img, url, everyMs) {
    let busy = false;
    const next = () => {
      if (busy || document.hidden) return;
      busy = true;
      const loader = new Image();
      loader.onload = () => { img.src = loader.src; busy = false; };
      loader.onerror = () => { busy = false; };
      loader.src = withToken(url() + (url().includes("?") ? "&" : "?") + "t=" + Date.now());
    };
    next();
    return setInterval(next, everyMs);
  }

  // -- the grid ---------------------------------------------------------------------------

  async function grid() {
    const cards = new Map();
    const box = document.getElementById("grid");
    async function tick() {
      let state;
      try { state = await api("/api/state"); problem(null); } catch (err) { problem(String(err)); return; }
      header(state);
      for (const [name, cam] of Object.entries(state.cameras)) {
        let card = cards.get(name);
        if (!card) {
          const img = el("img", { alt: name });
          const holder = el("div", { class: "placeholder", hidden: true });
          const title = el("h3", {}, el("a", { href: withToken(`/cameras/${encodeURIComponent(name)}`), text: name }));
          const info = el("div", { class: "counts" });
          const node = el("article", { class: "card", "data-camera": name },
            title, el("div", { class: "picture" }, img, holder), info);
          box.append(node);
          // pictures by polling, not MJPEG: a browser opens at most six connections to a
          // host, and a grid of streams would use them all
          refresher(img, () => `/cameras/${encodeURIComponent(name)}/latest.jpg`, 1000);
          card = { node, title, holder, info };
          cards.set(name, card);
        }
        card.title.querySelector(".badge")?.remove();
        card.title.append(badge(cam));
        showPlaceholder(card.holder, cam);
        card.info.textContent = `${cam.fps.toFixed(1)} fps   ${counts(cam)}`;
      }
      for (const [name, card] of cards) {
        if (!(name in state.cameras)) { card.node.remove(); cards.delete(name); }
      }
    }
    await tick();
    setInterval(tick, 1000);
  }

  // -- a camera's page --------------------------------------------------------------------

  function cameraName() {
    const parts = location.pathname.split("/").filter(Boolean);
    return decodeURIComponent(parts[1]);
  }

  function eventText(e) {
    const p = e;
    switch (e.kind) {
      case "object": return `${p.type} ${p.after?.label ?? ""} #${p.after?.track_id ?? ""}`;
      case "zone_enter": case "zone_exit": return `${e.kind.replace("_", " ")} ${p.zone}: ${p.label} #${p.track_id}`;
      case "line_crossing": return `${p.line}: ${p.direction} ${p.label} #${p.track_id}`;
      case "alert": return `alert ${p.alert} ${p.state}`;
      case "camera_status": return `camera ${p.status}${p.reason ? ": " + p.reason : ""}`;
      default: return e.kind;
    }
  }

  async function camera() {
    const name = cameraName();
    document.getElementById("camera").textContent = name;
    document.title = `edged: ${name}`;
    const base = `/cameras/${encodeURIComponent(name)}`;
    document.getElementById("edit").href = withToken(`${base}/edit`);
    const live = document.getElementById("live");
    const form = document.getElementById("layers");
    const stream = () => {
      const q = ["boxes", "zones", "lines"].map((k) => `${k}=${form.elements[k].checked ? 1 : 0}`).join("&");
      live.src = withToken(`${base}/stream.mjpeg?${q}`);
    };
    form.addEventListener("change", stream);
    stream();
    const holder = document.getElementById("placeholder");
    let shown = new Set();
    async function tick() {
      let state;
      try { state = await api("/api/state"); problem(null); } catch (err) { problem(String(err)); return; }
      header(state);
      const cam = state.cameras[name];
      if (!cam) { problem(`camera ${name} is no longer in the config`); return; }
      showPlaceholder(holder, cam);
      const facts = [["state", badge(cam)], ["reason", cam.reason || "—"], ["fps", cam.fps.toFixed(1)],
        ["last frame", cam.last_frame_age_s === null ? "—" : `${cam.last_frame_age_s.toFixed(1)} s ago`],
        ["picture", cam.size ? `${cam.size[0]} × ${cam.size[1]}` : "—"], ["scene", cam.scene || "—"]];
      document.getElementById("state").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
      document.querySelector("#lines tbody").replaceChildren(...cam.lines.map((l) =>
        el("tr", { "data-line": l.name }, el("td", { text: l.name }), el("td", { class: "in", text: String(l.in) }), el("td", { class: "out", text: String(l.out) }))));
      document.querySelector("#zones tbody").replaceChildren(...cam.zones.map((z) =>
        el("tr", { "data-zone": z.name }, el("td", { text: z.name }), el("td", { class: "total", text: String(z.total) }),
          el("td", { text: Object.entries(z.counts).map(([k, v]) => `${v} ${k}`).join(", ") || "empty" }))));
    }
    async function events() {
      let got;
      try { got = await api(`/api/cameras/${encodeURIComponent(name)}/events`); } catch (err) { problem(String(err)); return; }
      const list = document.getElementById("events");
      for (const e of got.events) {
        if (shown.has(e.id)) continue;
        shown.add(e.id);
        const when = new Date((e.frame_ts ?? e.ts) * 1000).toLocaleTimeString();
        const item = el("li", { "data-kind": e.kind }, el("time", { text: when }), el("span", { text: eventText(e) }));
        if (e.snapshot_url) {
          const url = withToken(e.snapshot_url);
          item.append(el("a", { href: url, target: "_blank" }, el("img", { src: url, alt: "snapshot", loading: "lazy" })));
        }
        list.prepend(item);
      }
      while (list.children.length > 100) list.lastChild.remove();
      if (shown.size > 1000) shown = new Set(got.events.map((e) => e.id));
    }
    await tick();
    await events();
    setInterval(tick, 1000);
    setInterval(events, 2000);
  }

  window.edged = { api, el, withToken, problem, header, cameraName };
  const page = document.body.dataset.page;
  if (page === "grid") grid();
  else if (page === "camera") camera();
})();
