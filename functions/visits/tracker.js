/* Lead nurture: first-party page-view snippet, served by the site owner's own API.
 * Does nothing until the site calls leadNurture.consent() (after the visitor agreed).
 * Then it keeps a random visitor id in this site's localStorage, adds it to the page's
 * forms as a hidden visitor_id field, exchanges a nurture email's link reference (lnr)
 * once, and reports each page view (URL without query, title, referrer, visible time)
 * to POST /visits with navigator.sendBeacon when the page is hidden. No cookies of a
 * third party, no other destination.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = script ? script.src.replace(/\/tracker\.js(\?.*)?$/, "/visits") : "";
  var KEY = "leadNurtureVisitor";
  var REF = "lnr";
  var started = false;
  var visitorId = null;
  var viewId = null;
  var visibleSince = null;
  var visibleMs = 0;

  function now() { return Date.now(); }

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function storedVisitor() {
    try {
      var id = window.localStorage.getItem(KEY);
      if (id && /^[0-9a-f]{32}$/.test(id)) { return id; }
      id = randomId();
      window.localStorage.setItem(KEY, id);
      return id;
    } catch (e) {
      return randomId(); // storage blocked: this page only
    }
  }

  function send(body) {
    var text = JSON.stringify(body);
    // text/plain: a simple request, no CORS preflight; the API reads it as JSON.
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, text)) { return; }
    if (window.fetch) {
      window.fetch(endpoint, {method: "POST", body: text, keepalive: true,
        headers: {"Content-Type": "text/plain;charset=UTF-8"}, credentials: "omit"});
    }
  }

  function tagForms() {
    var forms = document.getElementsByTagName("form");
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i];
      var field = form.querySelector("input[name=visitor_id]");
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "visitor_id";
        form.appendChild(field);
      }
      field.value = visitorId;
    }
  }

  function exchangeReference() {
    var url = new URL(window.location.href);
    var ref = url.searchParams.get(REF);
    if (!ref) { return; }
    send({kind: "identify", visitor_id: visitorId, ref: ref});
    // Once: the reference leaves the address bar (and bookmarks, and shared links).
    url.searchParams.delete(REF);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(window.history.state, "", url.toString());
    }
  }

  function referrer() {
    var value = document.referrer || "";
    return /^https?:\/\//.test(value) ? value.split(/[?#]/)[0] : "";
  }

  function report() {
    if (visibleSince !== null) { visibleMs += now() - visibleSince; visibleSince = null; }
    var body = {
      kind: "view",
      visitor_id: visitorId,
      view_id: viewId,
      url: window.location.href.split(/[?#]/)[0],
      title: (document.title || "").slice(0, 300),
      seconds: Math.min(86400, Math.round(visibleMs / 1000))
    };
    var r = referrer();
    if (r) { body.referrer = r; }
    send(body);
  }

  function onVisibility() {
    if (document.visibilityState === "hidden") {
      report();
    } else if (visibleSince === null) {
      visibleSince = now();
    }
  }

  function consent() {
    if (started || !endpoint) { return; }
    started = true;
    visitorId = storedVisitor();
    viewId = randomId();
    visibleSince = document.visibilityState === "visible" ? now() : null;
    tagForms();
    exchangeReference();
    document.addEventListener("visibilitychange", onVisibility);
    // Some browsers skip visibilitychange when a tab is closed: pagehide as well; the
    // API counts repeats of one view_id once.
    window.addEventListener("pagehide", function () {
      if (document.visibilityState !== "hidden") { report(); }
    });
  }

  window.leadNurture = {
    consent: consent,
    visitorId: function () { return visitorId; },
    // Report now (a single-page site changing pages); the next view gets a new id.
    flush: function () {
      if (!started) { return; }
      report();
      viewId = randomId();
      visibleMs = 0;
      visibleSince = document.visibilityState === "visible" ? now() : null;
    }
  };
}());
