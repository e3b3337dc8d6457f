// Small helpers for the UI pages: the embedded report grows to its content's height, and
// the compare button stays off until exactly two runs are picked.
(function () {
  "use strict";
  var frame = document.getElementById("report");
  function fit() {
    try {
      var doc = frame.contentDocument;
      if (doc && doc.documentElement) {
        frame.style.height = doc.documentElement.scrollHeight + 24 + "px";
      }
    } catch (e) {
      // another origin: keep the default height
    }
  }
  if (frame) {
    frame.addEventListener("load", fit);
    window.addEventListener("resize", fit);
  }
  var form = document.getElementById("compare-form");
  var button = document.getElementById("compare-button");
  if (form && button) {
    var boxes = form.querySelectorAll('input[name="run"]');
    var update = function () {
      var picked = 0;
      for (var i = 0; i < boxes.length; i++) {
        if (boxes[i].checked) {
          picked++;
        }
      }
      button.disabled = picked !== 2;
    };
    for (var i = 0; i < boxes.length; i++) {
      boxes[i].addEventListener("change", update);
    }
    update();
  }
})();
