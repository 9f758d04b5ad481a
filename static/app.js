// Progressive enhancement only: every form works without this file.
// - range sliders show their value;
// - inputs with data-suggest fetch /api/anime/search as you type and show suggestions:
//   data-suggest="navigate" opens the chosen anime's page, data-suggest="pick" adds it to the favourites list
//   (a title picked twice is said so, not silently dropped); Enter in a pick box takes the first result of the
//   search for exactly what is typed, waiting for it when the suggestions shown are for older text; adult titles
//   are suggested only when the visitor chose to include them (the include_adult cookie the pages set);
// - the options panel stays as the person left it: its open or closed state is kept in a cookie the server
//   reads, so the next page renders it that way (no jump after the page has drawn);
// - a poster that fails to load gives way to its placeholder (the title's initials);
// - forms marked data-drop-empty leave their empty fields out of the address they open.
// Text is always inserted with textContent, never as HTML.
"use strict";

(function () {
  var SUGGESTION_LIMIT = 8;
  var DEBOUNCE_MS = 150;

  function debounce(fn, wait) {
    var timer = null;
    var debounced = function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, wait);
    };
    debounced.cancel = function () { clearTimeout(timer); };
    return debounced;
  }

  function title(item) {
    return item.english_name || item.name;
  }

  function details(item) {
    var parts = [];
    if (item.english_name && item.english_name !== item.name) parts.push(item.name);
    if (item.type) parts.push(item.type);
    if (item.year) parts.push(String(item.year));
    if (item.not_yet_aired) parts.push("not yet aired");
    return parts.join(" · ");
  }

  function includeAdult() {
    return document.cookie.split(";").some(function (part) { return part.trim() === "include_adult=1"; });
  }

  function searchUrl(query) {
    return "/api/anime/search?limit=" + SUGGESTION_LIMIT + "&q=" + encodeURIComponent(query) +
      (includeAdult() ? "&include_adult=1" : "");
  }

  function setupSliders() {
    document.querySelectorAll("input[type=range][data-output]").forEach(function (slider) {
      var output = document.getElementById(slider.dataset.output);
      if (!output) return;
      var show = function () { output.textContent = Number(slider.value).toFixed(2); };
      slider.addEventListener("input", show);
      show();
    });
  }

  function setupSuggest(input) {
    var list = document.getElementById(input.getAttribute("aria-controls"));
    if (!list) return;
    var items = [];
    var shownQuery = null;  // the text the suggestions on show were found for
    var active = -1;
    var controller = null;

    function hide() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var options = list.querySelectorAll("li[role=option]");
      options.forEach(function (option, i) { option.setAttribute("aria-selected", i === index ? "true" : "false"); });
      active = index;
      if (options[index]) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      }
    }

    function choose(item) {
      hide();
      if (input.dataset.suggest === "navigate") {
        window.location.href = "/anime/" + encodeURIComponent(item.anime_id);
      } else {
        addFavourite(item);
        input.value = "";
        input.focus();
      }
    }

    function render(results, query) {
      items = results;
      shownQuery = query;
      list.replaceChildren();
      if (!results.length) {
        var empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = "No matching title";
        empty.setAttribute("role", "option");
        empty.setAttribute("aria-disabled", "true");
        list.appendChild(empty);
      }
      results.forEach(function (item, i) {
        var option = document.createElement("li");
        option.setAttribute("role", "option");
        option.id = list.id + "-" + i;
        option.dataset.animeId = item.anime_id;
        option.textContent = title(item);
        var small = document.createElement("small");
        small.textContent = details(item);
        option.appendChild(small);
        // mousedown, not click: it fires before the input loses focus and hides the list
        option.addEventListener("mousedown", function (event) { event.preventDefault(); choose(item); });
        list.appendChild(option);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      active = -1;
    }

    // then: called with the results once they are on show (the Enter of a pick box)
    function search(then) {
      var query = input.value.trim();
      if (!query) { hide(); return; }
      if (controller) controller.abort();
      controller = new AbortController();
      fetch(searchUrl(query), { signal: controller.signal, headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : { results: [] }; })
        .then(function (body) {
          render(body.results || [], query);
          if (then) then(items);
        })
        .catch(function (error) { if (error.name !== "AbortError") hide(); });
    }

    var lookup = debounce(function () { search(null); }, DEBOUNCE_MS);

    input.addEventListener("input", lookup);
    input.addEventListener("blur", function () { setTimeout(hide, 100); });
    input.addEventListener("keydown", function (event) {
      if (list.hidden || !items.length) return;
      if (event.key === "ArrowDown") {
        event.preventDefault();
        highlight((active + 1) % items.length);
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        highlight((active - 1 + items.length) % items.length);
      } else if (event.key === "Enter" && active >= 0) {
        event.preventDefault();
        choose(items[active]);
      } else if (event.key === "Escape") {
        hide();
      }
    });
    // A "pick" box is not a form of its own: Enter without a highlighted suggestion takes the first result for
    // what is typed now, searched at once when the suggestions on show were found for earlier text.
    if (input.dataset.suggest === "pick") {
      input.addEventListener("keydown", function (event) {
        if (event.key !== "Enter") return;
        event.preventDefault();
        if (active >= 0 || !input.value.trim()) return;
        if (shownQuery === input.value.trim() && !list.hidden) {
          if (items.length) choose(items[0]);
        } else {
          lookup.cancel();  // it would abort this search
          search(function (found) { if (found.length) choose(found[0]); });
        }
      });
    }
  }

  function pickedList() {
    return document.getElementById("picked");
  }

  function updatePicked() {
    var picked = pickedList();
    if (!picked) return;
    var count = picked.querySelectorAll("li").length;
    var empty = document.getElementById("picked-empty");
    if (empty) empty.hidden = count > 0;
    var submit = document.getElementById("favourites-submit");
    if (submit) submit.disabled = count === 0;
  }

  function say(text) {
    var note = document.getElementById("picked-note");
    if (note) note.textContent = text;
  }

  function addFavourite(item) {
    var picked = pickedList();
    if (!picked) return;
    var id = String(item.anime_id);
    var max = Number(picked.dataset.max || 50);
    if (picked.querySelector('li[data-anime-id="' + CSS.escape(id) + '"]')) {
      say(title(item) + " is already in your picks: each anime counts once.");
      return;
    }
    if (picked.querySelectorAll("li").length >= max) {
      say("You can pick at most " + max + " anime: remove one to add another.");
      return;
    }
    say("Added " + title(item) + " to your picks.");
    var chip = document.createElement("li");
    chip.dataset.animeId = id;
    var label = document.createElement("span");
    label.textContent = title(item);
    var hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = "liked";
    hidden.value = id;
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.setAttribute("aria-label", "Remove " + title(item));
    remove.textContent = "×";
    chip.append(label, hidden, remove);
    picked.appendChild(chip);
    updatePicked();
  }

  function setupPicked() {
    var picked = pickedList();
    if (!picked) return;
    picked.addEventListener("click", function (event) {
      var button = event.target.closest("button.remove");
      if (!button) return;
      button.closest("li").remove();
      updatePicked();
    });
    updatePicked();
  }

  function setupOptions() {
    document.querySelectorAll("details.options").forEach(function (panel) {
      panel.addEventListener("toggle", function () {
        document.cookie = "options=" + (panel.open ? "open" : "closed") + "; path=/; max-age=31536000; SameSite=Lax";
      });
    });
  }

  function setupPosters() {
    var fail = function (image) { image.closest(".poster").classList.add("failed"); };
    // error does not bubble, but it can be caught on the way down: one listener for every poster, even one
    // added later; the images that failed before this script ran are found by looking.
    document.addEventListener("error", function (event) {
      var image = event.target;
      if (image instanceof HTMLImageElement && image.closest(".poster")) fail(image);
    }, true);
    document.querySelectorAll(".poster img").forEach(function (image) {
      if (image.complete && image.naturalWidth === 0 && image.currentSrc) fail(image);
    });
  }

  function setupDropEmpty() {
    document.querySelectorAll("form[data-drop-empty]").forEach(function (form) {
      form.addEventListener("formdata", function (event) {
        var empty = [];
        event.formData.forEach(function (value, name) { if (typeof value === "string" && !value.trim()) empty.push(name); });
        empty.forEach(function (name) {
          var kept = event.formData.getAll(name).filter(function (value) { return typeof value !== "string" || value.trim(); });
          event.formData.delete(name);
          kept.forEach(function (value) { event.formData.append(name, value); });
        });
      });
    });
  }

  // The import page: a file dropped anywhere on the drop zone becomes the file input's file (the input itself
  // stays the way to choose one, by keyboard too); "Copy the link" copies the shareable address.
  function setupDropzone() {
    document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
      var input = zone.querySelector("input[type=file]");
      ["dragenter", "dragover"].forEach(function (name) {
        zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
      });
      ["dragleave", "drop"].forEach(function (name) {
        zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
      });
      zone.addEventListener("drop", function (event) {
        event.preventDefault();
        if (event.dataTransfer && event.dataTransfer.files.length) {
          input.files = event.dataTransfer.files;
          input.dispatchEvent(new Event("change", { bubbles: true }));
        }
      });
    });
  }

  function setupCopy() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var field = document.getElementById(button.dataset.copy);
      var status = document.getElementById("copy-status");
      field.value = new URL(field.value, window.location.href).href;  // the page holds the path: this site's address
      button.addEventListener("click", function () {
        field.select();
        var done = function () { if (status) status.textContent = "Copied."; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(done, function () {
            if (status) status.textContent = "Select the link and copy it.";
          });
        } else if (document.execCommand && document.execCommand("copy")) {
          done();
        } else if (status) {
          status.textContent = "Select the link and copy it.";
        }
      });
    });
  }

  setupSliders();
  setupDropzone();
  setupCopy();
  setupPicked();
  setupOptions();
  setupPosters();
  setupDropEmpty();
  document.querySelectorAll("input[data-suggest]").forEach(setupSuggest);
})();
