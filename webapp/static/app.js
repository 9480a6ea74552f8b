// The page: send the chosen photo to /api/landmarks, draw the boxes and points on a canvas,
// and list the coordinates. Plain JS, no framework.
(function () {
  "use strict";
  const POINTS = ["LE", "RE", "N", "LM", "RM"];
  const COLORS = { LE: "#0080ff", RE: "#00e5ff", N: "#ffd400", LM: "#ff2020", RM: "#ff00ff" };
  const MAX_CANVAS_SIDE = 1600; // the canvas shows big photos shrunk

  const form = document.getElementById("upload-form");
  const input = document.getElementById("image-input");
  const zone = document.getElementById("drop-zone");
  const dropText = document.getElementById("drop-text");
  const button = document.getElementById("submit-button");
  const message = document.getElementById("message");
  const result = document.getElementById("result");
  const canvas = document.getElementById("result-canvas");
  const table = document.getElementById("points-table");
  const tbody = table.querySelector("tbody");

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

  function loadImage(file) {
    return new Promise((resolve) => {
      const url = URL.createObjectURL(file);
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => resolve(null); // e.g. TIFF: the browser cannot show it
      img.src = url;
    });
  }

  function draw(img, data) {
    const scale = Math.min(1, MAX_CANVAS_SIDE / Math.max(data.width, data.height));
    canvas.width = Math.round(data.width * scale);
    canvas.height = Math.round(data.height * scale);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    const line = Math.max(2, canvas.width / 300);
    const radius = Math.max(3, canvas.width / 160);
    ctx.font = `${Math.round(radius * 3)}px sans-serif`;
    data.faces.forEach((face, i) => {
      const b = face.box;
      ctx.lineWidth = line;
      ctx.strokeStyle = "#00c800";
      // The face region is the box turned by -roll about its centre (tilted heads).
      const cx = (b.left + b.right) / 2, cy = (b.top + b.bottom) / 2;
      ctx.save();
      ctx.translate(cx * scale, cy * scale);
      ctx.rotate(((face.roll || 0) * Math.PI) / 180);
      ctx.strokeRect((b.left - cx) * scale, (b.top - cy) * scale, (b.right - b.left) * scale, (b.bottom - b.top) * scale);
      ctx.fillStyle = "#00c800";
      ctx.fillText(String(i + 1), (b.left - cx) * scale, (b.top - cy) * scale - line * 2);
      ctx.restore();
      POINTS.forEach((name) => {
        const [x, y] = face.points[name];
        ctx.beginPath();
        ctx.arc(x * scale, y * scale, radius, 0, 2 * Math.PI);
        ctx.fillStyle = COLORS[name];
        ctx.fill();
      });
    });
  }

  function fillTable(data) {
    tbody.replaceChildren();
    data.faces.forEach((face, i) => {
      POINTS.forEach((name) => {
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

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = input.files && input.files[0];
    if (!file) return;
    if (file.size > Number(form.dataset.maxBytes)) {
      // The server would refuse it (413); say so without sending megabytes for nothing.
      setState("error", `This file is too large: the limit is ${form.dataset.maxMb} MB.`);
      return;
    }
    button.disabled = true;
    result.hidden = true;
    setState("busy", "Looking for faces…");
    try {
      const body = new FormData();
      body.append("image", file);
      const resp = await fetch("/api/landmarks", { method: "POST", body });
      let data = null;
      try { data = await resp.json(); } catch (err) { data = null; }
      if (!resp.ok) {
        setState("error", (data && data.error) || `The server answered ${resp.status}.`);
        return;
      }
      const img = await loadImage(file);
      fillTable(data);
      table.hidden = data.faces.length === 0;
      result.hidden = false;
      canvas.hidden = !img;
      if (img) draw(img, data);
      const n = data.faces.length;
      let text = n === 0
        ? "No face found in this photo. Try one where the face is frontal, well lit and not too small."
        : `${n} face${n > 1 ? "s" : ""} found (${Math.round(data.time_ms.total)} ms).`;
      if (!img) text += " Your browser cannot display this format; the table lists the points.";
      setState("done", text);
    } catch (err) {
      setState("error", "Could not reach the server: " + err.message);
    } finally {
      button.disabled = false;
    }
  });

  setState("idle", "");
})();
