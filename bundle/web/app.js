// s3upload web page: lists file types, uploads a file, lists and deletes files.
//
// The API address is not baked in: it comes from config.json next to this page, so the same
// files work behind any load balancer. Any failure to reach the API (no config, network error,
// CORS refusal) shows "Problem accessing back-end"; errors the API answers with are shown as
// its own message instead.
"use strict";

(function () {
  const el = (id) => document.getElementById(id);
  const banner = el("backend-error");
  const typeSelect = el("filetype");
  const typeHelp = el("filetype-help");
  const form = el("upload-form");
  const fileInput = el("file");
  const status = el("upload-status");
  const filesBody = document.querySelector("#files tbody");
  const filesEmpty = el("files-empty");

  let apiUrl = null;
  let fileTypes = [];

  // Thrown when the API could not be reached at all, as opposed to answering with an error.
  class BackendUnreachable extends Error {}

  function setBackendReachable(ok) {
    banner.hidden = ok;
  }

  function showStatus(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  async function loadConfig() {
    let config;
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
      config = await response.json();
    } catch (err) {
      throw new BackendUnreachable(String(err));
    }
    if (!config || typeof config.apiUrl !== "string" || !config.apiUrl) {
      throw new BackendUnreachable("config.json has no apiUrl");
    }
    return config.apiUrl.replace(/\/+$/, "");
  }

  // fetch() against the API; returns parsed JSON, throws BackendUnreachable or Error(message).
  async function api(path, options) {
    let response;
    try {
      response = await fetch(apiUrl + path, options);
    } catch (err) {
      setBackendReachable(false);
      throw new BackendUnreachable(String(err));
    }
    setBackendReachable(true);
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error ? body.error : `HTTP ${response.status}`;
      throw new Error(message);
    }
    return body;
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1) + " MB";
    if (bytes >= 1024) return (bytes / 1024).toFixed(1) + " KB";
    return bytes + " B";
  }

  function renderFileTypes() {
    typeSelect.replaceChildren(
      ...fileTypes.map((ft) => {
        const option = document.createElement("option");
        option.value = ft.type;
        option.textContent = ft.text;
        return option;
      })
    );
    renderTypeHelp();
  }

  function renderTypeHelp() {
    const selected = fileTypes.find((ft) => ft.type === typeSelect.value);
    typeHelp.textContent = selected ? selected.help : "";
    fileInput.accept = selected ? selected.extensions.map((e) => "." + e).join(",") : "";
  }

  function renderFiles(files) {
    filesBody.replaceChildren(...files.map(fileRow));
    filesEmpty.hidden = files.length > 0;
  }

  function fileRow(file) {
    const row = document.createElement("tr");
    row.dataset.id = file.id;

    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = file.url;
    link.textContent = file.name;
    name.append(link);

    const type = document.createElement("td");
    type.textContent = file.type;
    const size = document.createElement("td");
    size.className = "size";
    size.textContent = formatSize(file.size);
    const uploaded = document.createElement("td");
    uploaded.textContent = file.uploadedAt ? new Date(file.uploadedAt).toLocaleString() : "";

    const actions = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", "Delete " + file.name);
    remove.addEventListener("click", () => deleteFile(file, remove));
    actions.append(remove);

    row.append(name, type, size, uploaded, actions);
    return row;
  }

  async function refreshFiles() {
    renderFiles(await api("/files"));
  }

  async function deleteFile(file, button) {
    button.disabled = true;
    try {
      await api("/files/" + encodeURIComponent(file.id), { method: "DELETE" });
      await refreshFiles();
      showStatus(`Deleted ${file.name}`);
    } catch (err) {
      button.disabled = false;
      if (!(err instanceof BackendUnreachable)) showStatus(`Delete failed: ${err.message}`, true);
    }
  }

  async function upload(event) {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) {
      showStatus("Choose a file first.", true);
      return;
    }
    const data = new FormData();
    data.append("type", typeSelect.value);
    data.append("file", file);
    showStatus(`Uploading ${file.name}…`);
    try {
      const stored = await api("/upload", { method: "POST", body: data });
      form.reset();
      renderTypeHelp();
      await refreshFiles();
      showStatus(`Uploaded ${stored.name}`);
    } catch (err) {
      if (err instanceof BackendUnreachable) showStatus("");
      else showStatus(`Upload failed: ${err.message}`, true);
    }
  }

  async function start() {
    try {
      apiUrl = await loadConfig();
      fileTypes = await api("/filetypes");
      renderFileTypes();
      await refreshFiles();
    } catch (err) {
      if (err instanceof BackendUnreachable) setBackendReachable(false);
      else showStatus(err.message, true);
    }
    document.body.dataset.ready = "true";
  }

  typeSelect.addEventListener("change", renderTypeHelp);
  form.addEventListener("submit", upload);
  start();
})();
