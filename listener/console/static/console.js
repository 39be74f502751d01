/* listener console: live pages, without reloading them.

   A page with a [data-refresh] box (its interval in seconds, from the daemon) fetches
   itself again every so often and swaps each region marked [data-live] for its fresh
   copy. Forms are never inside a region, so what someone is typing stays; a region
   whose field has the focus waits for the next round anyway. Paused while the tab is
   hidden; caught up when it comes back. The box says when the page was last updated,
   or that a refresh failed (the page stays as it was, and it tries again). The chart
   keeps showing its last picture until the new one has loaded.

   No JavaScript: the page works the same, with its Refresh link. */
(function () {
  "use strict";
  var box = document.querySelector("[data-refresh]");
  if (!box || !window.fetch || !window.DOMParser) {
    return;
  }
  var every = Math.max(1, parseInt(box.getAttribute("data-refresh"), 10) || 30) * 1000;
  var link = box.querySelector("a.refresh");
  var url = link ? link.href : location.href;
  var status = box.querySelector("[data-live-status]");
  var served = {};  // each region's markup as the server last sent it
  var timer = null;
  var busy = false;

  Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), function (region) {
    served[region.id] = region.innerHTML;
  });

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function hhmmss() {
    return new Date().toTimeString().slice(0, 8);
  }

  function typingIn(region) {
    var el = document.activeElement;
    return !!el && region.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  function bust(src) {  // the server's own src, made new so the picture is fetched again
    return src + (src.indexOf("?") < 0 ? "?" : "&") + "r=" + Date.now();
  }

  /* What the reader had open or scrolled inside the region, put back after a swap. */
  function keep(region) {
    var open = Array.prototype.map.call(region.querySelectorAll("details"), function (d) {
      return d.open;
    });
    var scrolled = Array.prototype.map.call(region.querySelectorAll(".scroll"), function (s) {
      return s.scrollLeft;
    });
    var charts = Array.prototype.slice.call(region.querySelectorAll("img.chart"));
    return function () {
      Array.prototype.forEach.call(region.querySelectorAll("details"), function (d, i) {
        d.open = !!open[i];
      });
      Array.prototype.forEach.call(region.querySelectorAll(".scroll"), function (s, i) {
        s.scrollLeft = scrolled[i] || 0;
      });
      Array.prototype.forEach.call(region.querySelectorAll("img.chart"), function (fresh, i) {
        var old = charts[i];
        var src = bust(fresh.getAttribute("src"));
        if (old) {  // the old picture stays up until the new one has loaded
          fresh.replaceWith(old);
          old.alt = fresh.alt;
          old.src = src;
        } else {
          fresh.src = src;
        }
      });
    };
  }

  /* Swap every live region for its copy in ``page``; false when the page has none of
     them (not this page any more: signed out, or gone). */
  function apply(page) {
    var regions = document.querySelectorAll("[data-live]");
    var fresh = [];
    for (var i = 0; i < regions.length; i++) {
      var copy = page.getElementById(regions[i].id);
      if (!copy || !copy.hasAttribute("data-live")) {
        return false;
      }
      fresh.push(copy);
    }
    fresh.forEach(function (copy, i) {
      var region = regions[i];
      if (served[region.id] === copy.innerHTML || typingIn(region)) {
        return;
      }
      var restore = keep(region);
      served[region.id] = copy.innerHTML;
      region.innerHTML = copy.innerHTML;
      restore();
    });
    return true;
  }

  function later() {
    if (timer === null && !busy && document.visibilityState !== "hidden") {
      timer = setTimeout(tick, every);
    }
  }

  function tick() {
    timer = null;
    if (document.visibilityState === "hidden") {
      return;  // visibilitychange brings it back
    }
    busy = true;
    var options = {credentials: "same-origin", cache: "no-store", headers: {Accept: "text/html"}};
    if (window.AbortSignal && AbortSignal.timeout) {
      options.signal = AbortSignal.timeout(Math.max(every, 10000));
    }
    fetch(url, options)
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("HTTP " + answer.status);
        }
        return answer.text();
      })
      .then(function (html) {
        if (!apply(new DOMParser().parseFromString(html, "text/html"))) {
          throw new Error("not this page");
        }
        say("Updated " + hhmmss());
      })
      .catch(function () {
        say("Couldn't refresh at " + hhmmss() + ", retrying");
      })
      .then(function () {
        busy = false;
        later();
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (document.visibilityState !== "hidden" && !busy) {
      tick();
    }
  });
  say("Updates every " + every / 1000 + " s");
  later();
})();
