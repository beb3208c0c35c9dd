// deepfake-bot's page: sends each picture to POST /v1/check and shows the answer.
// Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

(function () {
  const TOKEN_KEY = "deepfake-bot-token";
  const PARALLEL = 2; // pictures in flight at once (the server queues the rest anyway)
  const BANDS = {
    no_manipulation_detected: "real",
    uncertain: "uncertain",
    likely_manipulated: "fake",
  };
  const NETWORK_TROUBLE =
    "Could not reach the server. Check your connection and try again.";

  const $ = (id) => document.getElementById(id);
  const results = $("results");
  const fileInput = $("file");
  const template = $("card-template");
  let model = null;
  let waiting = [];
  let running = 0;
  let cardCount = 0;

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  function setToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* private mode: asked again next time */ }
  }

  function formatPercent(p) {
    const pct = p * 100;
    if (pct < 1) return "<1%";
    if (pct > 99) return ">99%";
    return Math.round(pct) + "%";
  }

  function position(box, width) {
    const centre = (box[0] + box[2]) / 2;
    if (centre < width / 3) return "left";
    if (centre > (2 * width) / 3) return "right";
    return "centre";
  }

  function showTokenBox(message) {
    $("token-box").hidden = false;
    const err = $("token-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("token-input").focus();
  }

  // --- the model card ---------------------------------------------------------------------
  async function loadModel() {
    try {
      const r = await fetch("/v1/model", { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error("HTTP " + r.status);
      model = await r.json();
    } catch (e) {
      $("model-name").textContent = "(not available)";
      return;
    }
    $("model-name").textContent = model.name;
    const figures = Object.entries(model.figures || {});
    $("model-figures").textContent = figures.length
      ? "Measured: " + figures.map(([k, v]) => k + ": " + v).join(" · ")
      : "No measured figures ship with these weights.";
    if (model.auth_required && !token()) showTokenBox("");
  }

  // --- one card per picture ------------------------------------------------------------------
  function newCard(file) {
    const node = template.content.firstElementChild.cloneNode(true);
    cardCount += 1;
    node.id = "card-" + cardCount;
    node.querySelector(".card-title").textContent = file.name || "Pasted image";
    const img = node.querySelector("img");
    img.alt = "The picture you sent" + (file.name ? ": " + file.name : "");
    if (file.type.startsWith("image/")) {
      img.src = URL.createObjectURL(file);
      img.addEventListener("error", () => { img.hidden = true; }, { once: true });
    } else {
      img.hidden = true;
    }
    node.classList.add("pending");
    results.prepend(node);
    return node;
  }

  function setStatus(card, text, busy) {
    const status = card.querySelector(".status");
    status.textContent = "";
    if (busy) {
      const spin = document.createElement("span");
      spin.className = "spinner";
      spin.setAttribute("aria-hidden", "true");
      status.append(spin);
    }
    status.append(text);
  }

  function showProblem(card, message, file) {
    card.classList.remove("pending");
    card.classList.add("failed");
    const img = card.querySelector("img");
    if (img.src) URL.revokeObjectURL(img.src);
    card.querySelector(".frame").hidden = true;
    const problem = card.querySelector(".problem");
    problem.hidden = false;
    problem.textContent = message;
    setStatus(card, "No verdict", false);
    if (file) {
      const again = document.createElement("button");
      again.type = "button";
      again.className = "again";
      again.textContent = "Try again";
      again.addEventListener("click", () => {
        card.remove();
        enqueue([file]);
      });
      problem.append(" ", again);
    }
  }

  function drawBoxes(card, data) {
    if (data.kind === "video") return;  // boxes move over time: the rows say when instead
    const frame = card.querySelector(".frame");
    const w = data.width, h = data.height;
    const place = (el, box) => {
      el.style.left = (100 * box[0] / w) + "%";
      el.style.top = (100 * box[1] / h) + "%";
      el.style.width = (100 * (box[2] - box[0]) / w) + "%";
      el.style.height = (100 * (box[3] - box[1]) / h) + "%";
    };
    data.faces.forEach((face, i) => {
      const el = document.createElement("div");
      el.className = "box " + BANDS[face.verdict];
      place(el, face.box);
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = (data.faces.length > 1 ? "#" + (i + 1) + " " : "") +
        formatPercent(face.p_fake);
      el.append(tag);
      frame.append(el);
    });
    (data.too_small || []).forEach((box) => {
      const el = document.createElement("div");
      el.className = "box small";
      place(el, box);
      el.title = "Too small to judge";
      frame.append(el);
    });
  }

  function showVerdict(card, data, seconds) {
    card.classList.remove("pending");
    const band = BANDS[data.verdict];
    card.classList.add("done", band);
    setStatus(card, "Checked", false);
    drawBoxes(card, data);
    const v = card.querySelector(".verdict");
    v.hidden = false;
    const head = v.querySelector(".headline");
    head.className = "headline " + band;
    head.textContent = data.label + " — " + formatPercent(data.p_fake) +
      " probability of a face manipulation";
    v.querySelector(".caveat").textContent = data.caveat;
    const body = v.querySelector("tbody");
    // A video's rows are its face tracks: when each face is seen, and its mean over frames.
    const rows = data.kind === "video"
      ? data.tracks.map((t) => ({ verdict: t.verdict, p_fake: t.p_fake,
          where: t.first_s.toFixed(1) + "–" + t.last_s.toFixed(1) + " s, " + t.frames +
            (t.frames === 1 ? " frame" : " frames") }))
      : data.faces.map((f) => ({ verdict: f.verdict, p_fake: f.p_fake,
          where: position(f.box, data.width) }));
    rows.forEach((face, i) => {
      const tr = document.createElement("tr");
      const cells = [
        "Face " + (i + 1),
        face.where,
        ({ real: "No manipulation detected", uncertain: "Uncertain",
           fake: "Likely manipulated" })[BANDS[face.verdict]],
        formatPercent(face.p_fake),
      ];
      cells.forEach((text, j) => {
        const td = document.createElement(j === 0 ? "th" : "td");
        if (j === 0) td.scope = "row";
        td.textContent = text;
        if (j === 2) td.className = BANDS[face.verdict];
        tr.append(td);
      });
      body.append(tr);
    });
    if (data.faces_too_small) {
      const note = v.querySelector(".small-note");
      note.hidden = false;
      note.textContent = data.faces_too_small === 1
        ? "1 more face was found but is too small to judge."
        : data.faces_too_small + " more faces were found but are too small to judge.";
    }
    const server = data.timings_ms && data.timings_ms.total;
    v.querySelector(".meta").textContent = "Model: " + data.model + " · took " +
      seconds.toFixed(2) + " s" +
      (server ? ", of which the analysis " + (server / 1000).toFixed(2) + " s" : "");
  }

  // Sizes as the server words them (bot/core/errors.py): "31 MB", "2.5 MB", "800 KB".
  function size(n) {
    const mb = n / (1024 * 1024);
    if (mb >= 10 || (mb >= 1 && mb === Math.floor(mb))) return mb.toFixed(0) + " MB";
    if (mb >= 1) return mb.toFixed(1) + " MB";
    return Math.max(1, Math.round(n / 1024)) + " KB";
  }

  // --- sending ---------------------------------------------------------------------------
  async function check(file, card) {
    // Refused here too: a browser may not show the server's answer to an upload it cut short.
    if (model && file.size > model.max_image_bytes) {
      showProblem(card, "This file is " + size(file.size) + "; I can check images of up to " +
        size(model.max_image_bytes) + ".", null);
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name || "pasted.png");
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const t0 = performance.now();
    let response, data;
    try {
      response = await fetch("/v1/check", { method: "POST", body: form, headers });
      data = await response.json();
    } catch (e) {
      showProblem(card, NETWORK_TROUBLE, file);
      return;
    }
    if (response.ok) {
      showVerdict(card, data, (performance.now() - t0) / 1000);
      return;
    }
    const message = (data && data.error && data.error.message) || NETWORK_TROUBLE;
    if (response.status === 401) {
      setToken("");
      showTokenBox(message);
    }
    const retryable = [401, 429, 503, 500, 400].includes(response.status);
    showProblem(card, message, retryable ? file : null);
  }

  function pump() {
    while (running < PARALLEL && waiting.length) {
      const [file, card] = waiting.shift();
      running += 1;
      setStatus(card, "Checking…", true);
      check(file, card).finally(() => {
        running -= 1;
        pump();
      });
    }
  }

  function enqueue(files) {
    for (const file of files) {
      const card = newCard(file);
      setStatus(card, "Waiting…", true);
      waiting.push([file, card]);
    }
    pump();
  }

  // --- the three ways in: picker, drop, paste ----------------------------------------------
  $("pick").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    enqueue(Array.from(fileInput.files || []));
    fileInput.value = "";
  });

  const drop = $("drop");
  let dragDepth = 0;
  document.addEventListener("dragenter", (e) => {
    e.preventDefault();
    dragDepth += 1;
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) drop.classList.remove("over");
  });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    dragDepth = 0;
    drop.classList.remove("over");
    const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []);
    if (files.length) enqueue(files);
  });

  document.addEventListener("paste", (e) => {
    if (e.target && e.target.id === "token-input") return;
    const items = Array.from((e.clipboardData && e.clipboardData.items) || []);
    const files = items.filter((i) => i.kind === "file").map((i) => i.getAsFile()).filter(Boolean);
    if (files.length) {
      e.preventDefault();
      enqueue(files);
    }
  });

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token-input").value.trim());
    $("token-input").value = "";
    $("token-box").hidden = true;
    $("pick").focus();
  });

  // For tests and scripts driving the page: check a File without the picker.
  window.deepfakeBot = { enqueue };
  loadModel();
})();
