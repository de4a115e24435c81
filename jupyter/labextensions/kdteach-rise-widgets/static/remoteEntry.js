/*
 * kdteach-rise-widgets: ipywidgets in RISE slideshows (jupyterlab-rise 0.43).
 *
 * The widget manager of JupyterLab (@jupyter-widgets/jupyterlab-manager 5) asks the page
 * for the shared package @jupyterlab/console, only to name the console tracker, an
 * optional need. JupyterLab provides that package; RISE's slideshow page is built from
 * fewer JupyterLab packages and does not, so the widget manager fails to load there and
 * every widget shows as text (jupyterlab-contrib/rise issue 119).
 *
 * This prebuilt extension has no plugin. When a page shares its packages with it, and
 * only if the page has no @jupyterlab/console of its own, it adds one that holds the
 * IConsoleTracker token and nothing else. No plugin provides that token there, so the
 * widget manager starts without a console tracker, as it does when no console exists.
 * In JupyterLab itself the real package is present and this extension does nothing.
 */
(function () {
  "use strict";
  var NAME = "kdteach-rise-widgets";
  var CONSOLE = "@jupyterlab/console";
  var VERSION = "0.0.0"; // below any real version: never chosen over a real package

  // The newest version a share scope holds of a package, as webpack picks a singleton.
  function newest(versions) {
    return Object.keys(versions).sort(function (a, b) {
      return b.localeCompare(a, undefined, { numeric: true });
    })[0];
  }

  async function init(scope) {
    if (scope[CONSOLE] && Object.keys(scope[CONSOLE]).length > 0) {
      return; // the page provides the real package
    }
    var coreutils = scope["@lumino/coreutils"];
    if (!coreutils || Object.keys(coreutils).length === 0) {
      return; // not a JupyterLab page
    }
    var entry = coreutils[newest(coreutils)];
    entry.loaded = 1; // as webpack marks a shared package it hands out
    var lumino = (await entry.get())();
    var module = {
      __esModule: true,
      IConsoleTracker: new lumino.Token(
        CONSOLE + ":IConsoleTracker",
        "A console tracker; none in this page (" + NAME + ")."
      ),
    };
    scope[CONSOLE] = {};
    scope[CONSOLE][VERSION] = {
      get: function () {
        return Promise.resolve(function () {
          return module;
        });
      },
      from: NAME,
      eager: false,
      loaded: 1,
    };
  }

  function get(request) {
    return Promise.reject(new Error(NAME + " provides no module " + request));
  }

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = { init: init, get: get };
})();
