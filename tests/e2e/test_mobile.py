"""Every page on a 390 x 844 phone, in Chromium, with data on it: nothing wider than the screen.

A page fails when the document scrolls sideways, or when any element sticks out of the viewport
other than inside a box that scrolls on its own (the admin's wide tables). Form fields and buttons
must be tall enough to tap (40 px), and text readable against its background (WCAG AA). The
cart's long product names must not run over prices, quantities or totals. Which pages exist
comes from the app's URL map, so a new page that this test does not visit makes it fail.
Money, quantities and column headings never break across lines (the checkout read "€43.5" over "0"),
and outside the admin's wide tables nothing a shopper taps is off the screen, even in a box that
scrolls (the address book's "Delete" was).
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from shop.extensions import db
from shop.models import Role
from shop.store.models import Product, ShippingRate
from tests.e2e.conftest import save_screenshot
from tests.support import clerk_user, event, live_server, signed_headers, wait_for

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
MIN_TAP_HEIGHT = 40

LONG_NAME = "Hand-thrown stoneware serving bowl with a reactive celadon glaze, big enough for a family dinner"
UNBROKEN_NAME = "Supercalifragilisticexpialidociousnotebookrefills"

# Whatever sticks out of the viewport, except inside an ancestor that clips or scrolls (overflow-x
# not "visible") and itself fits; and only the boxes meant to scroll sideways may do so (cards
# hidden in a scroll box are as unreadable as cards off the screen).
LAYOUT_PROBLEMS = """
() => {
  const SCROLL_BOXES = ".table-wrap:not(:has(.stack-table)), pre.payload";
  const root = document.documentElement;
  const width = root.clientWidth;
  const problems = [];
  if (root.scrollWidth > width) problems.push(`the page is ${root.scrollWidth}px wide on a ${width}px screen`);
  const describe = (el) => {
    const text = (el.innerText || el.value || "").trim().replace(/\\s+/g, " ").slice(0, 40);
    return `<${el.tagName.toLowerCase()}${el.className ? ' class="' + el.className + '"' : ""}> "${text}"`;
  };
  const inScrollBox = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible") return true;
    }
    return false;
  };
  // What may scroll sideways in its own box: the admin's wide tables and the webhook payload.
  for (const el of document.body.querySelectorAll("*")) {
    const overflowX = getComputedStyle(el).overflowX;
    if ((overflowX === "auto" || overflowX === "scroll") && el.scrollWidth > el.clientWidth + 1
        && !el.matches(SCROLL_BOXES)) {
      problems.push(`${describe(el)} scrolls sideways (${el.scrollWidth}px in ${el.clientWidth}px)`);
    }
  }
  const reported = new Set();  // the outermost culprit is enough: its children stick out with it
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.left >= -0.5 && box.right <= width + 0.5) continue;
    if (inScrollBox(el)) continue;
    reported.add(el);
    if (reported.has(el.parentElement)) continue;
    problems.push(`${describe(el)} spans ${Math.round(box.left)}..${Math.round(box.right)}px`);
  }
  return problems;
}
"""

# An amount of money, or a word of a number column or a column heading, that breaks across lines.
NUMBERS_BROKEN = """
() => {
  const MONEY = /[€$£]\\s?\\d[\\d,.]*\\d|\\d[\\d,.]*\\s?[€$£]/g;
  const clipped = (el) => {  // visually hidden (a stack-table's header row): read, never seen
    for (let e = el; e; e = e.parentElement) if (getComputedStyle(e).clip.startsWith("rect")) return true;
    return false;
  };
  const problems = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest("[data-clerk], pre") || !el.getClientRects().length || clipped(el)) continue;
    const tokens = node.textContent.matchAll(el.closest("th, .num") ? /\\S+/g : MONEY);
    for (const token of tokens) {
      const range = document.createRange();
      range.setStart(node, token.index);
      range.setEnd(node, token.index + token[0].length);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      if (tops.size > 1) problems.push(`"${token[0]}" breaks across ${tops.size} lines`);
    }
  }
  return problems;
}
"""

# Outside the admin, what a shopper taps is on the screen: not beyond its edge in a box that scrolls.
CONTROLS_OFF_SCREEN = """
() => {
  const width = document.documentElement.clientWidth;
  const off = [];
  for (const el of document.querySelectorAll("main a, main button, main input:not([type=hidden]), main select")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || el.closest(".visually-hidden")) continue;
    if (box.left < -0.5 || box.right > width + 0.5) {
      const text = (el.innerText || el.name || "").trim().slice(0, 30);
      off.push(`"${text}" is at ${Math.round(box.left)}..${Math.round(box.right)}px, off the screen`);
    }
  }
  return off;
}
"""

# Fields and buttons a thumb must hit; a checkbox counts by its label, which toggles it too.
SMALL_TAP_TARGETS = f"""
() => {{
  const small = [];
  const targets = document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button, a.button");
  for (const el of targets) {{
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    const target = (el.type === "checkbox" || el.type === "radio") ? (el.labels && el.labels[0]) : el;
    if (!target) {{ small.push(`<input type=${{el.type}} name=${{el.name}}> has no label to tap`); continue; }}
    const box = target.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.height < {MIN_TAP_HEIGHT}) {{
      const text = (target.innerText || target.name || target.id || "").trim().slice(0, 40);
      small.push(`<${{target.tagName.toLowerCase()}}> "${{text}}" is ${{Math.round(box.height)}}px tall`);
    }}
  }}
  return small;
}}
"""

# Text that cannot be read against its background (WCAG AA: 4.5:1, or 3:1 for large text), as the
# webhook payload was (light on light). The background is the nearest one that is painted.
LOW_CONTRAST = """
() => {
  const rgba = (color) => {
    const parts = (color.match(/rgba?\\(([^)]+)\\)/) || [null, ""])[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return parts.length >= 3 ? [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1] : null;
  };
  const luminance = ([r, g, b]) => {
    const linear = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const color = rgba(getComputedStyle(e).backgroundColor);
      if (color && color[3] > 0) return color;
    }
    return [255, 255, 255, 1];
  };
  const problems = [];
  for (const el of document.body.querySelectorAll("*")) {
    const hasText = [...el.childNodes].some((node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim());
    if (!hasText || el.closest("[disabled]")) continue;
    const box = el.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1) continue;  // visually hidden: read by screen readers only
    const style = getComputedStyle(el);
    const [fg, bg] = [luminance(rgba(style.color)), luminance(background(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) {
      const text = el.textContent.trim().replace(/\\s+/g, " ").slice(0, 40);
      problems.push(`"${text}" has a contrast of ${ratio.toFixed(2)}:1 (needs ${needed}:1)`);
    }
  }
  return problems;
}
"""

# Every page starts Clerk (base.html's script with its load options); the stand-in draws its mounts on load.
CLERK_LOADED = "Boolean(!document.querySelector('[data-clerk-load-options]') || (window.Clerk && window.Clerk.loaded))"

# Inside each cart line, the name, unit price, quantity field and line total do not overlap.
CART_OVERLAPS = """
() => {
  const overlaps = [];
  const parts = [".line-name", ".line-price", ".line-quantity input", ".line-total"];
  for (const line of document.querySelectorAll("[data-testid=cart-line]")) {
    const boxes = parts.map((selector) => [selector, line.querySelector(selector)]);
    for (const [selector, el] of boxes) if (!el) overlaps.push(`a cart line has no ${selector}`);
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      if (!boxes[i][1] || !boxes[j][1]) continue;
      const a = boxes[i][1].getBoundingClientRect(), b = boxes[j][1].getBoundingClientRect();
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) {
        overlaps.push(`${boxes[i][0]} overlaps ${boxes[j][0]} in "${line.innerText.slice(0, 30)}"`);
      }
    }
  }
  return overlaps;
}
"""


def sign_in_with_standin(page, url: str, email: str, first: str, last: str) -> None:
    page.goto(f"{url}/sign-in?next=/account")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill(last)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{url}/account")


def add_to_cart(page, url: str, slug: str, name: str, quantity: int) -> None:
    page.goto(f"{url}/products/{slug}")
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name=f"Add to cart ({name})").click()
    expect(page.get_by_text(f"Added {quantity} × {name} to your cart.")).to_be_visible()


def place_order(checker: PhoneChecker, url: str) -> str:
    """Check out (a new address the first time, the saved one after), pay on the Stripe stand-in's
    page, which is checked on the phone too; returns the order's path."""
    page = checker.page
    page.goto(f"{url}/checkout")
    if page.get_by_label("Full name").is_visible():
        page.get_by_label("Full name").fill("Maximiliane Wolkenkratzer-Oberhausen")
        page.get_by_label("Street and number").fill("Kurfürstendamm 123, Hinterhaus, Aufgang C")
        page.get_by_label("Postal code").fill("10711")
        page.get_by_label("City").fill("Berlin-Charlottenburg-Wilmersdorf")
        page.get_by_label("Country code").fill("DE")
    page.get_by_role("button", name="Continue to payment").click()
    page.wait_for_url(re.compile(rf"{re.escape(url)}/dev-stripe/checkout/\w+$"))
    checker.check_current(page.url.removeprefix(url))
    page.get_by_role("button", name="Pay", exact=True).click()
    page.wait_for_url(re.compile(rf"{re.escape(url)}/orders/\d+$"))
    return page.url.removeprefix(url)


def post_webhooks(app) -> None:
    """Clerk users arriving by signed webhooks, with the long names and e-mails a phone must fit."""
    client = app.test_client()
    people = [
        ("user_2xLongClerkIdentifierForAPhoneScreen01", "maximiliane.wolkenkratzer-oberhausen@example.com"),
        ("user_2xLongClerkIdentifierForAPhoneScreen02", "bartholomew.featherstonehaugh@example.org"),
    ]
    for clerk_id, email in people:
        body = event("user.created", clerk_user(clerk_id, email=email, first_name="Maximiliane", last_name="Wolken"))
        text = json.dumps(body)
        assert client.post("/api/webhooks/clerk", data=text, headers=signed_headers(text)).status_code < 300
    text = '{"object": "event", "type": "session.created", "data": {"object": "session", "id": "sess_x"}}'
    client.post("/api/webhooks/clerk", data=text, headers=signed_headers(text))


def html_pages(app) -> set[str]:
    """The rules of every page a browser can open (not the JSON API, webhooks, static files, uploaded
    product images, the Clerk stand-in, the Stripe stand-in's API, or Prometheus's /metrics)."""
    return {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and not rule.rule.startswith(("/api/", "/static/", "/images/", "/dev-clerk/", "/dev-stripe/v1/", "/metrics"))
        and rule.endpoint != "static"
    }


class PhoneChecker:
    """Opens pages in one phone-sized tab and collects every layout problem, page by page."""

    def __init__(self, app, page, url: str):
        self.adapter = app.url_map.bind("127.0.0.1")
        self.page = page
        self.url = url
        self.problems: dict[str, list[str]] = {}
        self.visited: set[str] = set()

    def check(self, path: str, status: int = 200, screenshot: str | None = None) -> None:
        response = self.page.goto(f"{self.url}{path}")
        assert response is not None and response.status == status, f"{path}: {response and response.status}"
        self.wait_for_clerk()
        self.check_current(path, screenshot)

    def wait_for_clerk(self) -> None:
        """Until Clerk (the stand-in) has loaded, so its mounts have drawn: polled, as the CSP forbids
        the eval wait_for_function needs (and "networkidle" cost half a second a page)."""
        wait_for(
            lambda: self.page.evaluate(CLERK_LOADED),
            timeout=15,
            what=lambda: f"Clerk to load on {self.page.url}",
            pause=lambda seconds: self.page.wait_for_timeout(seconds * 1000),
        )

    def check_current(self, path: str, screenshot: str | None = None) -> None:
        if screenshot:
            save_screenshot(self.page, screenshot)  # for docs/screenshots/, with SHOP_SCREENSHOTS=1
        rule, _ = self.adapter.match(path.split("?")[0], return_rule=True)
        self.visited.add(rule.rule)
        checks = [LAYOUT_PROBLEMS, SMALL_TAP_TARGETS, LOW_CONTRAST, NUMBERS_BROKEN]
        if not path.startswith("/admin"):
            checks.append(CONTROLS_OFF_SCREEN)
        found = [self.page.evaluate(check) for check in checks]
        found = [problem for problems in found for problem in problems]
        if found:
            self.problems[path] = found


def test_every_page_fits_a_phone(make_app, tmp_path, browser):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0
    with app.app_context():
        db.session.add_all(
            [
                Product(slug="serving-bowl", name=LONG_NAME, price_cents=123_456_78, stock=50, description="Big."),
                Product(slug="refills", name=UNBROKEN_NAME, price_cents=99_999_99, stock=50, description="Many."),
            ]
        )
        db.session.commit()
        long_product_id = db.session.scalar(select(Product.id).where(Product.slug == "serving-bowl"))
    post_webhooks(app)

    shopper_context = browser.new_context(**PHONE)
    staff_context = browser.new_context(**PHONE)
    try:
        with live_server(app) as url:
            shopper = shopper_context.new_page()
            shopper.set_default_timeout(15_000)
            pages = PhoneChecker(app, shopper, url)

            # --- signed out
            pages.check("/")
            pages.check("/?page=2")
            pages.check("/?q=mug")
            pages.check("/products/serving-bowl")
            pages.check("/sign-in")
            pages.check("/products/no-such-thing", status=404)

            # --- a shopper with two orders and a cart of long names
            sign_in_with_standin(shopper, url, "maximiliane.wolkenkratzer@example.com", "Maximiliane", "Wolkenkratzer")
            pages.check_current("/account")
            add_to_cart(shopper, url, "serving-bowl", LONG_NAME, 3)
            add_to_cart(shopper, url, "ceramic-mug", "Ceramic mug", 2)
            first_order = place_order(pages, url)
            add_to_cart(shopper, url, "refills", UNBROKEN_NAME, 7)
            second_order = place_order(pages, url)
            add_to_cart(shopper, url, "serving-bowl", LONG_NAME, 8)
            add_to_cart(shopper, url, "refills", UNBROKEN_NAME, 10)
            add_to_cart(shopper, url, "ceramic-mug", "Ceramic mug", 1)

            pages.check("/cart", screenshot="cart-mobile")
            assert shopper.evaluate(CART_OVERLAPS) == []
            pages.check("/checkout")
            pages.check("/orders", screenshot="orders-mobile")
            pages.check(first_order, screenshot="order-mobile")
            pages.check(second_order)
            pages.check(f"{second_order}/cancel")
            pages.check(f"/checkout/return/{second_order.rsplit('/', 1)[1]}")  # back from Stripe: to the order
            pages.check("/account")
            pages.check("/account/addresses")
            shopper.get_by_role("link", name=re.compile("Edit")).first.click()
            shopper.wait_for_url(re.compile(r".*/account/addresses/\d+/edit$"))
            pages.check_current(shopper.url.removeprefix(url))

            # --- staff: every admin page, with those orders, users, products and webhook events
            staff = staff_context.new_page()
            staff.set_default_timeout(15_000)
            sign_in_with_standin(staff, url, "grace.hopper@example.com", "Grace", "Hopper")
            assert (
                runner.invoke(args=["users", "set-role", "grace.hopper@example.com", Role.ADMIN.value]).exit_code == 0
            )
            admin = PhoneChecker(app, staff, url)
            admin.check("/admin/")
            admin.check("/admin/orders", screenshot="admin-orders-mobile")
            admin.check("/admin/orders?status=placed")
            admin.check("/admin/orders/export?from=2026-12-31&to=2026-12-01", status=400)  # the export's error
            admin.check(f"/admin{first_order}")
            admin.check("/admin/products")
            admin.check("/admin/products/new")
            admin.check(f"/admin/products/{long_product_id}")
            admin.check("/admin/shipping")
            admin.check("/admin/shipping/new")
            with app.app_context():
                rate_id = db.session.scalar(select(ShippingRate.id).order_by(ShippingRate.id).limit(1))
                db.session.rollback()
            assert rate_id is not None, "the demo data has shipping rates"
            admin.check(f"/admin/shipping/{rate_id}")
            admin.check("/admin/users")
            staff.get_by_role("main").get_by_role("link", name="Grace Hopper").click()
            staff.wait_for_url(re.compile(r".*/admin/users/\d+$"))
            admin.check_current(staff.url.removeprefix(url))
            admin.check("/admin/webhooks")
            staff.get_by_test_id("webhook-row").first.get_by_role("link").click()
            staff.wait_for_url(re.compile(r".*/admin/webhooks/\d+$"))
            admin.check_current(staff.url.removeprefix(url), screenshot="admin-webhook-mobile")
            admin.check("/admin/mail")
            staff.locator('a[href^="/admin/mail/"]').first.click()
            staff.wait_for_url(re.compile(r".*/admin/mail/\d+$"))
            admin.check_current(staff.url.removeprefix(url))

            # --- signing out is a page too (last: it ends the session); it moves on to / by itself,
            # so what a phone shows of it is the page it lands on
            shopper.goto(f"{url}/sign-out")
            shopper.wait_for_url(f"{url}/")
            pages.wait_for_clerk()
            pages.check_current("/sign-out")
            pages.check_current("/")
    finally:
        staff_context.close()
        shopper_context.close()

    problems = pages.problems | {f"(admin) {path}": found for path, found in admin.problems.items()}
    assert not problems, "\n".join(f"{path}: {problem}" for path, found in problems.items() for problem in found)
    assert html_pages(app) - pages.visited - admin.visited == set(), "pages this test does not open on a phone"


def test_the_check_catches_a_page_wider_than_the_phone(make_app, tmp_path, browser):
    """The layout check can fail: a wide element outside any scroll box is reported."""
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    context = browser.new_context(**PHONE)
    try:
        with live_server(app) as url:
            page = context.new_page()
            page.goto(f"{url}/")
            assert page.evaluate(LAYOUT_PROBLEMS) == []
            page.evaluate(
                "() => { const d = document.createElement('div'); d.style.width = '600px';"
                " d.textContent = 'wide'; document.querySelector('main').appendChild(d); }"
            )
            assert any("wide" in problem for problem in page.evaluate(LAYOUT_PROBLEMS))
            page.evaluate(
                "() => { const d = document.createElement('input'); d.style.cssText = 'min-height: 0; height: 20px';"
                " d.name = 'tiny'; document.querySelector('main').appendChild(d); }"
            )
            assert any("tiny" in problem for problem in page.evaluate(SMALL_TAP_TARGETS))
            assert page.evaluate(LOW_CONTRAST) == []
            page.evaluate(
                "() => { const p = document.createElement('p'); p.style.cssText = 'color: #eee; background: #fff';"
                " p.textContent = 'faint'; document.querySelector('main').appendChild(p); }"
            )
            assert any("faint" in problem for problem in page.evaluate(LOW_CONTRAST))
    finally:
        context.close()
