// Shopstack storefront: a little plain JavaScript on top of pages that work without it.
// - the cart badge and the cart page follow the cart live (GET /cart/events, SSE);
// - price and stock changes are announced in the status region;
// - filter forms apply on change; the product page shows the chosen variant's price.
(function () {
  "use strict";
  var live = document.getElementById("live");
  function announce(text) { if (live) { live.textContent = text; } }
  function units(cart) {
    return (cart.lines || []).reduce(function (n, l) { return n + (l.quantity || 0); }, 0);
  }

  var badge = document.querySelector("[data-cart-badge]");
  var cartBox = document.querySelector("[data-cart-live]");
  var refreshing = false;
  function refreshCart(version) {
    if (!cartBox || refreshing) { return; }
    if (String(version) === cartBox.getAttribute("data-version")) { return; }
    refreshing = true;
    fetch("/cart/lines", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        cartBox.innerHTML = html;
        cartBox.setAttribute("data-version", String(version));
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () { refreshing = false; });
  }

  if (badge && window.EventSource) {
    var source = new EventSource("/cart/events");
    source.addEventListener("cart", function (e) {
      var cart;
      try { cart = JSON.parse(e.data); } catch (err) { return; }
      var n = units(cart);
      badge.textContent = String(n);
      badge.setAttribute("aria-label", n + " items in cart");
      refreshCart(cart.version);
    });
    source.addEventListener("price_changed", function (e) {
      try { var d = JSON.parse(e.data); announce("The price of " + d.sku + " changed."); } catch (err) { /* ignore */ }
    });
    source.addEventListener("stock_changed", function (e) {
      try { var d = JSON.parse(e.data); announce("Stock of " + d.sku + " changed: " + d.available + " left."); } catch (err) { /* ignore */ }
    });
    source.addEventListener("closed", function () { source.close(); });
  }

  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    form.addEventListener("change", function () { form.submit(); });
  });

  var price = document.querySelector("[data-price]");
  document.querySelectorAll("input[type=radio][name=sku]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (price && radio.checked) { price.textContent = radio.getAttribute("data-price"); }
    });
  });
})();
