"""The viewer in a real browser (headless Chromium) against a live server on 127.0.0.1.

What only a browser can tell: that thumbnails decode as images, that the filter form leads to the right
count, that the sample page's script draws the overlay and its toggles hide and show it, that a hostile
class name stays text (no dialog ever opens), that sign-in and sign-out work with the cookie a browser keeps,
and that no page logs an error or a Content-Security-Policy violation (the ``watch`` fixture fails a test
that saw one, on any page it visited).
"""

from __future__ import annotations

from playwright.sync_api import Locator, Page

from headwater.catalog import Catalog

from ..support.browser import PageWatch, decoded_thumbnails
from ..support.servers import make_user
from .conftest import HOSTILE, N, Served


def _follow(page: Page, target: str | Locator) -> None:
    """Click a link or a submit button and wait until the page it leads to has loaded (so what is read next
    is never the old page's)."""
    with page.expect_navigation():
        if isinstance(target, str):
            page.click(target)
        else:
            target.click()


def _count(page: Page) -> int:
    text = page.inner_text("#match-count").strip()
    assert text.isdigit(), text
    return int(text)


def test_the_grid_shows_every_thumbnail_decoded(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.grid())
    assert _count(page) == N
    widths = decoded_thumbnails(page)
    assert len(widths) == N
    assert all(w > 0 for w in widths), widths
    assert page.locator("a#next-page").count() == 0  # one page holds them all
    # and each is its image, not a placeholder tile: the images are dark at the top, light at the bottom
    for top, bottom in _corner_lumas(page):
        assert top < 60 and bottom > 190, (top, bottom)


def test_a_grid_seen_again_comes_from_the_browser_cache(page: Page, watch: PageWatch, served: Served) -> None:
    """Thumbnails are addressed by the dataset uid and sent ``immutable``: the second visit of a grid asks the
    server for none of them (not even a 304), which the browser's resource timing shows as 0 bytes moved."""
    sizes = """() => performance.getEntriesByType("resource")
                   .filter(e => e.name.includes("/view/thumb/")).map(e => e.transferSize)"""
    page.goto(served.grid())
    decoded_thumbnails(page)
    first = page.evaluate(sizes)
    assert len(first) == N and all(size > 0 for size in first), first
    page.goto(served.grid())
    decoded_thumbnails(page)
    again = page.evaluate(sizes)
    assert again == [0] * N, again


def _corner_lumas(page: Page) -> list[tuple[float, float]]:
    """For each grid thumbnail: the mean luma of a patch at its top-left and at its bottom-left corner, read
    from the decoded image through a canvas (the thumbnails are same-origin, so the canvas is readable)."""
    lumas: list[tuple[float, float]] = page.eval_on_selector_all("a.cell img.thumb", """imgs => imgs.map(img => {
        const c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext("2d");
        g.drawImage(img, 0, 0);
        const patch = y => {
            const d = g.getImageData(2, y, 6, 4).data;
            let sum = 0;
            for (let i = 0; i < d.length; i += 4) { sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]; }
            return sum / (d.length / 4);
        };
        return [patch(2), patch(c.height - 6)];
    })""")
    return lumas


def test_the_pages_down_to_the_grid_link_to_each_other(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.url + "/view/")
    _follow(page, "a[href='/view/open']")
    _follow(page, "text=acme/pets")
    _follow(page, page.locator("a[href*='/train']").first)
    page.wait_for_selector("a.cell img.thumb")
    assert _count(page) == N
    page.goto(served.grid().rstrip("/") + "/stats")
    assert page.locator("svg").count() >= 1


def test_a_class_filter_changes_the_count_and_the_thumbnails(page: Page, watch: PageWatch,
                                                             served: Served) -> None:
    dogs = sum("dog" in row["classes"] for row in served.rows)
    cats_and_dogs = sum("dog" in row["classes"] and "cat" in row["classes"] for row in served.rows)
    page.goto(served.grid())
    page.check("form#filters input[type=checkbox][value='dog']")
    _follow(page, "form#filters [type=submit]")
    assert _count(page) == dogs
    assert len(decoded_thumbnails(page)) == dogs
    assert page.is_checked("form#filters input[type=checkbox][value='dog']")  # the form shows the filter

    page.check("form#filters input[type=checkbox][value='cat']")  # both present
    _follow(page, "form#filters [type=submit]")
    assert _count(page) == cats_and_dogs
    widths = decoded_thumbnails(page)
    assert len(widths) == cats_and_dogs and all(w > 0 for w in widths)

    page.goto(page.url)  # the filter lives in the URL: the same link shows the same view
    assert _count(page) == cats_and_dogs


def _shown(page: Page, selector: str) -> list[bool]:
    """For each element matching ``selector`` in the overlay: is it displayed?"""
    shown: list[bool] = page.eval_on_selector_all(
        selector, "els => els.map(el => getComputedStyle(el).display !== 'none' && el.getClientRects().length > 0)")
    return shown


def test_the_sample_toggles_hide_and_show_overlays(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.sample(0))  # cat (box), dog (box + mask), person (keypoints)
    page.wait_for_selector("body.overlay-ready", state="attached")
    assert page.eval_on_selector("#sample-image", "img => img.naturalWidth") > 0
    cat, dog = "#overlay g[data-class='cat']", "#overlay g[data-class='dog']"
    boxes = "#overlay g[data-kind='box']"
    assert page.locator(f"{cat}[data-kind='box'] rect").count() == 1
    assert page.locator(f"{dog}[data-kind='mask'] path").count() == 1
    assert page.locator("#overlay g[data-class='person'][data-kind='keypoints'] circle").count() == 2
    assert all(_shown(page, "#overlay g[data-class]"))

    page.uncheck("input.toggle-class[data-class='cat']")
    assert not any(_shown(page, cat)) and all(_shown(page, dog))
    page.check("input.toggle-class[data-class='cat']")
    assert all(_shown(page, cat))

    page.uncheck("input.toggle-kind[data-kind='box']")
    assert not any(_shown(page, boxes))
    assert all(_shown(page, "#overlay g[data-kind='mask']")) and all(_shown(page, "#overlay g[data-kind='keypoints']"))
    page.uncheck("input.toggle-class[data-class='dog']")  # a class off while its kind is off: both must come back
    page.check("input.toggle-kind[data-kind='box']")
    assert _shown(page, f"{cat}[data-kind='box']") == [True] and not any(_shown(page, dog))
    page.check("input.toggle-class[data-class='dog']")
    assert all(_shown(page, "#overlay g[data-class]"))


def test_prev_and_next_samples_and_the_raw_image(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.sample(1))
    _follow(page, "a#next-sample")
    page.wait_for_selector("body.overlay-ready", state="attached")
    assert page.url.split("?")[0].endswith("/train/2")
    assert '"pet02"' in page.inner_text("pre#droplet-json")
    _follow(page, "a#prev-sample")
    assert page.url.split("?")[0].endswith("/train/1")
    raw = page.request.get(page.eval_on_selector("a#raw-image", "a => a.href"))
    assert raw.ok and raw.body()[:2] == b"\xff\xd8"  # the JPEG itself


def test_next_and_previous_keep_the_filter(page: Page, watch: PageWatch, served: Served) -> None:
    dogs = [i for i, row in enumerate(served.rows) if "dog" in row["classes"]]
    page.goto(served.grid("class=dog"))
    _follow(page, page.locator("a.cell").nth(1))
    page.wait_for_selector("body.overlay-ready", state="attached")
    assert f'"pet{dogs[1]:02d}"' in page.inner_text("pre#droplet-json")
    _follow(page, "a#next-sample")
    page.wait_for_selector("body.overlay-ready", state="attached")
    assert f'"pet{dogs[2]:02d}"' in page.inner_text("pre#droplet-json")
    page.keyboard.press("ArrowLeft")  # the keyboard walks the same way
    page.wait_for_url(lambda url: f"/train/{dogs[1]}" in url)
    page.wait_for_selector("body.overlay-ready", state="attached")
    assert f'"pet{dogs[1]:02d}"' in page.inner_text("pre#droplet-json")
    _follow(page, "a#back-to-grid")
    page.wait_for_selector("a.cell img.thumb")
    assert _count(page) == len(dogs)


def test_a_hostile_class_name_stays_text(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.grid())
    decoded_thumbnails(page)
    page.goto(served.sample(5))
    page.wait_for_selector("body.overlay-ready", state="attached")
    names = page.eval_on_selector_all("input.toggle-class", "els => els.map(el => el.dataset.class)")
    assert HOSTILE in names
    assert page.get_by_text(HOSTILE, exact=True).count() >= 1  # shown as its own characters
    label = page.eval_on_selector_all("#overlay g[data-kind='label'] text", "els => els.map(el => el.textContent)")
    assert any(HOSTILE in t for t in label), label
    assert HOSTILE in page.inner_text("pre#droplet-json")
    assert page.locator("img[src='x']").count() == 0  # never became an element
    page.uncheck(f"input.toggle-class[data-class='{HOSTILE}']")
    assert not any(_shown(page, f"#overlay g[data-class='{HOSTILE}']"))
    page.goto(served.grid().rstrip("/") + "/stats")
    assert page.locator("img[src='x']").count() == 0
    assert watch.dialogs == []


def test_a_private_database_is_invisible_until_sign_in(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.url + "/view/")
    assert page.locator("a[href='/view/vault']").count() == 0
    assert page.locator("a[href='/view/open']").count() == 1
    response = page.goto(served.url + "/view/vault")
    assert response is not None and response.status == 404
    watch.forgive("status of 404")  # the browser logs the refusal it was asked to load

    page.goto(served.url + "/view/signin")
    page.fill("form#signin input[name=key]", served.alice)
    _follow(page, "form#signin [type=submit]")
    assert page.inner_text("#user").strip() == "alice"
    cookies = page.context.cookies()
    assert cookies and all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    assert all(served.alice not in c["value"] for c in cookies)  # the key itself is never in the cookie

    page.goto(served.url + "/view/")
    _follow(page, "a[href='/view/vault']")
    _follow(page, "text=alice/diary")
    page.goto(f"{served.url}/view/vault/alice/diary/{served.vault_uid}/train")
    assert _count(page) == 3
    widths = decoded_thumbnails(page)
    assert len(widths) == 3 and all(w > 0 for w in widths)

    _follow(page, "form#signout [type=submit]")
    assert page.locator("#user").count() == 0
    page.goto(served.url + "/view/")
    assert page.locator("a[href='/view/vault']").count() == 0
    response = page.goto(f"{served.url}/view/vault/alice/diary/{served.vault_uid}/train")
    assert response is not None and response.status == 404
    watch.forgive("status of 404")


def test_a_wrong_key_is_refused(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.url + "/view/signin")
    page.fill("form#signin input[name=key]", served.alice[:-4] + "xxxx")
    _follow(page, "form#signin [type=submit]")
    assert page.locator("#user").count() == 0
    assert page.context.cookies() == []
    watch.forgive("Failed to load resource")  # a refused sign-in answers 4xx, which the browser logs


def test_the_browser_refuses_an_inline_script(page: Page, watch: PageWatch, served: Served) -> None:
    """The Content-Security-Policy header is one the browser enforces: a script element written into a
    viewer page (as injected markup would be) does not run, and the browser reports the violation — the
    report the ``watch`` fixture looks for on every other page."""
    page.goto(served.sample(5))
    page.wait_for_selector("body.overlay-ready", state="attached")
    ran = page.evaluate("""() => new Promise(resolve => {
        document.addEventListener("securitypolicyviolation", e => resolve(["refused", e.violatedDirective]));
        const s = document.createElement("script");
        s.textContent = "window.injected = true";
        document.body.appendChild(s);
        setTimeout(() => resolve([window.injected === true ? "ran" : "silent", ""]), 2000);
    })""")
    assert ran[0] == "refused" and ran[1].startswith("script-src"), ran
    assert page.evaluate("window.injected === undefined")
    assert any("Content Security Policy" in e for e in watch.console_errors), watch.console_errors
    watch.forgive("Content Security Policy")


def test_zoom_buttons_scale_the_image(page: Page, watch: PageWatch, served: Served) -> None:
    page.goto(served.sample(0))
    page.wait_for_selector("body.overlay-ready", state="attached")
    before = page.eval_on_selector("#sample-image", "el => el.getBoundingClientRect().width")
    page.click("#zoom-in")
    after = page.eval_on_selector("#sample-image", "el => el.getBoundingClientRect().width")
    assert after > before * 1.2
    page.click("#zoom-reset")
    assert page.eval_on_selector("#sample-image", "el => el.getBoundingClientRect().width") == before


def test_without_anonymous_reads_the_viewer_asks_to_sign_in_first(page: Page, watch: PageWatch, served: Served,
                                                                   closed_url: str) -> None:
    grid = f"{closed_url}/view/open/acme/pets/{served.open_uid}/train?class=cat"
    page.goto(grid)
    assert page.locator("form#signin").count() == 1  # redirected to the form, which knows where to go back
    page.fill("form#signin input[name=key]", served.alice)
    _follow(page, "form#signin [type=submit]")
    page.wait_for_selector("a.cell img.thumb")
    assert page.url == grid
    assert _count(page) == sum("cat" in row["classes"] for row in served.rows)
    assert all(w > 0 for w in decoded_thumbnails(page))  # the cookie also opens the thumbnails


def test_revoking_the_key_ends_its_sessions(page: Page, watch: PageWatch, served: Served) -> None:
    secret = make_user(served.catalog, "alice")
    page.goto(served.url + "/view/signin")
    page.fill("form#signin input[name=key]", secret)
    _follow(page, "form#signin [type=submit]")
    page.goto(served.url + "/view/")
    assert page.inner_text("#user").strip() == "alice"
    assert page.locator("a[href='/view/vault']").count() == 1
    with Catalog(served.catalog) as cat:
        who = cat.authenticate(secret)
        assert who is not None
        cat.revoke_api_key(who.key_id)
    page.reload()
    assert page.locator("#user").count() == 0
    assert page.locator("a[href='/view/vault']").count() == 0
