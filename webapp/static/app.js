// The page. Photo mode: send the chosen photo to /api/landmarks, draw the server's upright copy
// of it with the boxes and points, list the coordinates, offer them as JSON and PNG. Camera
// mode: send shrunk camera frames one after another and draw the points over the live video.
// Plain JS, no framework.
(function () {
  "use strict";
  // The point names come with each answer (face.points, in the server's order); these colour them.
  const COLORS = { LE: "#0080ff", RE: "#00e5ff", N: "#ffd400", LM: "#ff2020", RM: "#ff00ff" };
  const OTHER_COLOR = "#ffffff";
  const BOX_COLOR = "#00c800";
  const LIVE_SEND_WIDTH = 640; // camera frames are shrunk to this width before they are sent
  const LIVE_QUALITY = 0.8;    // and sent as JPEG of this quality
  const FPS_WINDOW_MS = 2000;  // frames per second over the last this many milliseconds
  // Faces and points whose confidence (the chance of being within 5% of the box width) is below
  // this are drawn as doubtful: dashed grey box and "?" for a face, hollow ring for a point.
  const LOW_CONFIDENCE = 0.5;
  const LOW_COLOR = "#9e9e9e";
  const CROP_SIZE = 112;       // aligned crops: ArcFace's template size (the server sends the matrices)

  const $ = (id) => document.getElementById(id);
  const form = $("upload-form");
  const input = $("image-input");
  const zone = $("drop-zone");
  const dropText = $("drop-text");
  const button = $("submit-button");
  const message = $("message");
  const result = $("result");
  const resultName = $("result-name");
  const canvas = $("result-canvas");
  const table = $("points-table");
  const tbody = table.querySelector("tbody");
  const crops = $("crops");
  const cropList = $("crop-list");
  const photoView = $("photo-view");
  const cameraView = $("camera-view");
  const video = $("live-video");
  const overlay = $("live-overlay");
  const liveStats = $("live-stats");
  const cameraMessage = $("camera-message");

  // ---- drawing, shared by both modes ----

  // Boxes, numbers and points of `faces` (API coordinates times `scale` = canvas pixels). Their
  // sizes follow each face's size, never below what can be seen where the canvas is shown
  // `shown` times its own size.
  function drawFaces(ctx, faces, scale, shown) {
    const px = 1 / Math.max(shown, 1e-3); // one screen pixel, in canvas pixels
    faces.forEach((face, i) => {
      const b = face.box;
      const width = (b.right - b.left) * scale;
      const line = Math.max(width * 0.012, px);
      const radius = Math.max(width * 0.035, 2 * px);
      const font = Math.max(width * 0.2, 12 * px);
      // The face region is the box turned by -roll about its centre (tilted heads).
      const cx = (b.left + b.right) / 2, cy = (b.top + b.bottom) / 2;
      ctx.save();
      ctx.translate(cx * scale, cy * scale);
      ctx.rotate(((face.roll || 0) * Math.PI) / 180);
      const x0 = (b.left - cx) * scale, y0 = (b.top - cy) * scale;
      const doubtful = face.confidence !== undefined && face.confidence < LOW_CONFIDENCE;
      ctx.lineWidth = line;
      ctx.strokeStyle = doubtful ? LOW_COLOR : BOX_COLOR;
      if (doubtful) ctx.setLineDash([4 * line, 3 * line]);
      ctx.strokeRect(x0, y0, width, (b.bottom - b.top) * scale);
      ctx.setLineDash([]);
      ctx.fillStyle = doubtful ? LOW_COLOR : BOX_COLOR;
      ctx.font = `bold ${Math.round(font)}px sans-serif`;
      ctx.textBaseline = "bottom";
      ctx.fillText(doubtful ? `${i + 1}? low confidence` : String(i + 1), x0, y0 - line);
      ctx.restore();
      Object.entries(face.points).forEach(([name, [x, y]]) => {
        const sure = !face.point_confidence || face.point_confidence[name] >= LOW_CONFIDENCE;
        ctx.beginPath();
        ctx.arc(x * scale, y * scale, radius, 0, 2 * Math.PI);
        if (sure) {
          ctx.fillStyle = COLORS[name] || OTHER_COLOR;
          ctx.fill();
        } else {
          ctx.lineWidth = Math.max(radius * 0.45, px);
          ctx.strokeStyle = COLORS[name] || OTHER_COLOR;
          ctx.stroke();
        }
      });
    });
  }

  function shownScale(el) {
    return el.width ? el.getBoundingClientRect().width / el.width : 1;
  }

  // ---- photo mode ----

  let latest = 0;          // number of the newest upload: only its answer is shown
  let controller = null;   // aborts the upload a newer one replaces
  let shown = null;        // {name, data} of the result on the page

  function setState(state, text) {
    document.body.dataset.state = state; // idle | busy | done | error (tests wait on it)
    message.textContent = text;
    message.className = state === "error" ? "error" : "";
  }

  function chosen() {
    const file = input.files && input.files[0];
    button.disabled = !file;
    dropText.textContent = file ? file.name : "Drop a photo here, or click to choose one";
  }

  input.addEventListener("change", chosen);
  ["dragenter", "dragover"].forEach((ev) => zone.addEventListener(ev, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((ev) => zone.addEventListener(ev, (e) => {
    e.preventDefault();
    zone.classList.remove("over");
  }));
  zone.addEventListener("drop", (e) => {
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      chosen();
    }
  });

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("the server's copy of the photo cannot be shown"));
      img.src = src;
    });
  }

  function draw(img, data) {
    // The server's upright copy (TIFF, and WebP turned by its EXIF tag, show as they should).
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    drawFaces(ctx, data.faces, canvas.width / data.width, shownScale(canvas));
  }

  // Each face's aligned crop, cut here from the server's copy of the photo with the matrix the
  // server sent (face.aligned.matrix: photo pixels -> crop pixels), and a link to save it. The
  // copy is at most 1280 pixels across: full-resolution crops come from `predict --align`.
  function showCrops(img, data, name) {
    const base = name.replace(/\.[^.]*$/, "") || "photo";
    cropList.replaceChildren();
    data.faces.forEach((face, i) => {
      if (!face.aligned) return;
      const size = face.aligned.size;
      const [[a, c, e], [b, d, f]] = face.aligned.matrix;
      const cut = document.createElement("canvas");
      cut.width = size;
      cut.height = size;
      cut.className = "crop";
      const ctx = cut.getContext("2d");
      ctx.fillStyle = "#000"; // outside the photo: black, as in predict's crops
      ctx.fillRect(0, 0, size, size);
      ctx.imageSmoothingQuality = "high";
      // The matrix takes pixel centres at integers; a canvas pixel i spans [i, i + 1].
      ctx.setTransform(a, b, c, d, e + 0.5 - 0.5 * (a + c), f + 0.5 - 0.5 * (b + d));
      ctx.drawImage(img, 0, 0, data.width, data.height);
      const link = document.createElement("a");
      link.href = cut.toDataURL("image/png");
      link.download = `${base}.face${i + 1}.png`;
      link.className = "crop-link";
      link.title = `Save face ${i + 1} as PNG`;
      const label = document.createElement("span");
      label.textContent = `Face ${i + 1} (PNG)`;
      link.append(cut, label);
      cropList.appendChild(link);
    });
    crops.hidden = cropList.childElementCount === 0;
  }

  function fillTable(data) {
    tbody.replaceChildren();
    data.faces.forEach((face, i) => {
      Object.keys(face.points).forEach((name) => {
        const tr = document.createElement("tr");
        tr.className = "point-row";
        tr.dataset.face = String(i + 1);
        [String(i + 1), name, face.points[name][0].toFixed(1), face.points[name][1].toFixed(1)]
          .forEach((text, col) => {
            const td = document.createElement("td");
            td.textContent = text;
            if (col === 1) td.className = "name";
            tr.appendChild(td);
          });
        tbody.appendChild(tr);
      });
    });
  }

  // ", 1 with low confidence (dashed)" when some faces are doubtful.
  function lowText(faces) {
    const low = faces.filter((f) => f.confidence !== undefined && f.confidence < LOW_CONFIDENCE).length;
    return low ? `, ${low} with low confidence (dashed)` : "";
  }

  function summary(name, data) {
    const n = data.faces.length;
    return n === 0
      ? `No face found in ${name}. Try a photo where the face is frontal, well lit and not too small.`
      : `${name}: ${n} face${n > 1 ? "s" : ""} found (${Math.round(data.time_ms.total)} ms)` +
        `${lowText(data.faces)}.`;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = input.files && input.files[0];
    if (!file) return;
    const mine = ++latest;
    if (controller) controller.abort();
    controller = null;
    result.hidden = true;
    if (file.size > Number(form.dataset.maxBytes)) {
      // The server would refuse it (413, the same limit); say so without sending it.
      setState("error", `${file.name} is too large: the limit is ${form.dataset.maxMb} MB.`);
      return;
    }
    controller = new AbortController();
    button.disabled = true;
    setState("busy", `Looking for faces in ${file.name}…`);
    try {
      const body = new FormData();
      body.append("image", file);
      body.append("preview", "1");
      body.append("align", String(CROP_SIZE));
      const resp = await fetch("/api/landmarks", { method: "POST", body, signal: controller.signal });
      let data = null;
      try { data = await resp.json(); } catch (err) { data = null; }
      if (mine !== latest) return; // a newer upload started meanwhile: its answer counts
      if (!resp.ok) {
        setState("error", `${file.name}: ${(data && data.error) || `the server answered ${resp.status}`}.`);
        return;
      }
      const img = await loadImage(data.preview.src);
      if (mine !== latest) return;
      fillTable(data);
      table.hidden = data.faces.length === 0;
      resultName.textContent = file.name;
      result.hidden = false;
      draw(img, data);
      showCrops(img, data, file.name);
      shown = { name: file.name, data };
      setState("done", summary(file.name, data));
    } catch (err) {
      if (mine !== latest) return;
      setState("error", "Could not reach the server: " + err.message);
    } finally {
      if (mine === latest) button.disabled = !(input.files && input.files[0]);
    }
  });

  // ---- downloads of the result on the page ----

  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  }

  function stem() {
    return shown.name.replace(/\.[^.]*$/, "") || "photo";
  }

  $("download-json").addEventListener("click", () => {
    if (!shown) return;
    const { preview, ...answer } = shown.data; // the picture is in the PNG
    const text = JSON.stringify({ file: shown.name, ...answer }, null, 2);
    save(new Blob([text + "\n"], { type: "application/json" }), `${stem()}.landmarks.json`);
  });
  $("download-png").addEventListener("click", () => {
    if (!shown) return;
    canvas.toBlob((blob) => save(blob, `${stem()}.landmarks.png`), "image/png");
  });

  // ---- camera mode ----

  let live = null; // {stream, running, times, sent}

  function setMode(camera) {
    $("photo-mode").setAttribute("aria-pressed", String(!camera));
    $("camera-mode").setAttribute("aria-pressed", String(camera));
    photoView.hidden = camera;
    cameraView.hidden = !camera;
    if (camera) startCamera(); else stopCamera();
  }

  async function startCamera() {
    if (live) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraMessage.textContent = "This browser gives no camera to this page (it needs https or localhost).";
      return;
    }
    cameraMessage.textContent = "Starting the camera…";
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (err) {
      cameraMessage.textContent = `No camera: ${err.message || err.name}.`;
      return;
    }
    // The server follows this stream's faces from frame to frame (common/tracker.py) under
    // this id, so most frames cost only the landmark nets.
    live = { stream, running: true, times: [], frames: 0, camera: streamId(), sent: 0 };
    video.srcObject = stream;
    await video.play().catch(() => {});
    // As many frames on their way as the server has model processes (at most 4).
    let lanes = 1;
    try {
      const health = await (await fetch("/healthz")).json();
      lanes = Math.max(1, Math.min(4, health.processes || 1));
    } catch (err) { /* one lane */ }
    cameraMessage.textContent = "";
    for (let k = 0; k < lanes; k++) pump(live);
  }

  function stopCamera() {
    if (!live) return;
    live.running = false;
    live.stream.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
    live = null;
  }

  function streamId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Array.from({ length: 4 }, () => Math.random().toString(36).slice(2, 10)).join("-");
  }

  function grab() {
    const w = LIVE_SEND_WIDTH;
    const h = Math.round((video.videoHeight * w) / video.videoWidth);
    const small = document.createElement("canvas");
    small.width = w;
    small.height = h;
    small.getContext("2d").drawImage(video, 0, 0, w, h);
    return new Promise((resolve) => small.toBlob(resolve, "image/jpeg", LIVE_QUALITY));
  }

  // One lane: send a frame, draw its answer, send the next.
  async function pump(session) {
    while (session.running) {
      if (!video.videoWidth) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      try {
        const body = new FormData();
        body.append("image", await grab(), "frame.jpg");
        body.append("live", "1");
        body.append("camera", session.camera);
        body.append("frame", String(++session.sent));
        const resp = await fetch("/api/landmarks", { method: "POST", body });
        const data = await resp.json();
        if (!session.running) return;
        if (!resp.ok) throw new Error(data.error || `the server answered ${resp.status}`);
        showLive(session, data);
      } catch (err) {
        if (!session.running) return;
        cameraMessage.textContent = `Frame not analysed: ${err.message}`;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  function showLive(session, data) {
    overlay.width = video.videoWidth;
    overlay.height = video.videoHeight;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    const scale = overlay.width / data.width;
    drawFaces(ctx, data.faces, scale, shownScale(overlay));
    const now = performance.now();
    session.times.push(now);
    while (session.times[0] < now - FPS_WINDOW_MS) session.times.shift();
    session.frames += 1;
    const span = (now - session.times[0]) / 1000;
    const fps = span > 0 ? (session.times.length - 1) / span : 0;
    const n = data.faces.length;
    liveStats.textContent = `${fps.toFixed(1)} frames/s · server ${Math.round(data.time_ms.server)} ms ` +
      `per frame · ${n} face${n === 1 ? "" : "s"}`;
    // For tests and scripts: the numbers, and the last faces in video pixels.
    liveStats.dataset.frames = String(session.frames);
    liveStats.dataset.fps = fps.toFixed(2);
    liveStats.dataset.serverMs = String(data.time_ms.server);
    liveStats.dataset.faces = JSON.stringify(data.faces.map((f) => ({
      track_id: f.track_id,
      points: Object.fromEntries(Object.entries(f.points).map(([p, xy]) => [p, xy.map((v) => v * scale)])) })));
  }

  $("photo-mode").addEventListener("click", () => setMode(false));
  $("camera-mode").addEventListener("click", () => setMode(true));
  $("camera-stop").addEventListener("click", () => setMode(false));

  setState("idle", "");
})();
