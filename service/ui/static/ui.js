/* Earshot dashboard behaviour. Loaded as a file (the Content-Security-Policy allows no
   inline script). Forms that change state send JSON to the /v1 API through the
   `earshot-json` htmx extension, with the CSRF header from <body hx-headers>. */
"use strict";

function csrfHeaders() {
  return JSON.parse(document.body.getAttribute("hx-headers") || "{}");
}

function toast(text, isError) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = text;
  box.className = isError ? "show error" : "show";
  clearTimeout(box._timer);
  box._timer = setTimeout(() => { box.className = ""; }, 6000);
}

function convert(value, type) {
  if (type === "number") return Number(value);
  if (type === "datetime") return new Date(value).toISOString();
  return value;
}

function setPath(target, key, value) {
  const parts = key.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) node = node[part] = node[part] || {};
  node[parts[parts.length - 1]] = value;
}

function formBody(parameters, elt) {
  const form = elt.closest("form");
  const body = {};
  const typeOf = (name) => {
    const field = form && form.querySelector(`[name="${CSS.escape(name)}"]`);
    return field ? field.dataset.type : undefined;
  };
  parameters.forEach((value, key) => {
    const type = typeOf(key);
    if (type === "bool") return;
    if (type === "list") {
      const list = body[key] || [];
      list.push(value);
      setPath(body, key, list);
    } else if (value !== "") {
      setPath(body, key, convert(value, type));
    }
  });
  if (form) {
    form.querySelectorAll('[data-type="bool"]').forEach((box) => setPath(body, box.name, box.checked));
    form.querySelectorAll('[data-type="list"]').forEach((box) => { if (!(box.name in body)) body[box.name] = []; });
  }
  return body;
}

function problemText(xhr) {
  try {
    const problem = JSON.parse(xhr.responseText);
    return problem.detail || problem.title || `HTTP ${xhr.status}`;
  } catch (e) {
    return `HTTP ${xhr.status}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  htmx.defineExtension("earshot-json", {
    onEvent(name, evt) {
      if (name === "htmx:configRequest") evt.detail.headers["Content-Type"] = "application/json";
    },
    encodeParameters(xhr, parameters, elt) {
      xhr.overrideMimeType("text/json");
      return JSON.stringify(formBody(parameters, elt));
    },
  });
  document.body.addEventListener("htmx:afterRequest", (evt) => {
    const elt = evt.detail.elt;
    const xhr = evt.detail.xhr;
    if (!elt || !elt.dataset || !xhr) return;
    if (evt.detail.successful) {
      if (elt.dataset.done) toast(elt.dataset.done, false);
      if (elt.dataset.show) {
        const out = document.querySelector(elt.dataset.showIn);
        try { if (out) out.textContent = JSON.parse(xhr.responseText)[elt.dataset.show]; } catch (e) { /* not JSON */ }
      }
      if (elt.tagName === "FORM" && elt.dataset.reload !== undefined && !elt.dataset.show) elt.reset();
      if (elt.dataset.reload !== undefined) htmx.trigger(document.body, "earshot:changed");
    } else if (xhr.status >= 400 && (xhr.getResponseHeader("content-type") || "").includes("json")) {
      toast(problemText(xhr), true);
    }
  });
  if (window.EarshotChart) window.EarshotChart.start();
});
