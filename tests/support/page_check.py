"""Drives the Sluice server's web page in headless Chromium (Debian's, through Playwright):
submits a job file from the page's form, sees the job RUNNING with a counter that moves,
checks the operator graph is drawn (a screenshot of it, its pixels counted) and the watermark
and checkpoints are shown, stops the job with the page's button and sees it STOPPED, resumes
it (RUNNING) and cancels it (STOPPED). Prints what it saw as JSON.

usage: page_check.py CHROMIUM ENDPOINT JOB_FILE SCREENSHOT"""
import json
import struct
import sys
import time
import zlib

from playwright.sync_api import sync_playwright

chromium, endpoint, job_file, screenshot = sys.argv[1:5]


def png_pixels(path):
    """(width, height, rows of RGBA bytes) of an 8-bit RGBA or RGB PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=chromium,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(endpoint + "/")
    page.set_input_files("#submit-file", job_file)
    page.wait_for_function("document.getElementById('submit-sql').value.includes('INSERT INTO')")
    page.fill("#submit-name", "from-the-page")
    page.click("#submit-button")
    page.wait_for_function("document.getElementById('job-state').textContent === 'RUNNING'",
                           timeout=60000)
    title = page.text_content("#job-title")

    def read_count():
        text = page.text_content("#job-read").replace(",", "")
        return int(text) if text.isdigit() else 0

    page.wait_for_function(
        "parseInt(document.getElementById('job-read').textContent.replace(/,/g, '')) > 0",
        timeout=60000)
    first = read_count()
    deadline = time.time() + 30
    second = first
    while second <= first and time.time() < deadline:
        page.wait_for_timeout(500)
        second = read_count()
    nodes = page.locator("#graph rect.node").count()
    page.locator("#graph").screenshot(path=screenshot)
    width, height, channels, rows = png_pixels(screenshot)
    # The node boxes' border colour (#1d3557): drawn boxes, not an empty picture.
    border = sum(
        1 for row in rows for x in range(width)
        if abs(row[x * channels] - 0x1d) < 40 and abs(row[x * channels + 1] - 0x35) < 40
        and abs(row[x * channels + 2] - 0x57) < 40)
    jobs_listed = page.locator("#jobs tr.job").count()
    page.wait_for_function("document.querySelectorAll('#checkpoints tbody tr').length > 0",
                           timeout=60000)
    checkpoints = page.locator("#checkpoints tbody tr").count()
    watermark = page.text_content("#job-watermark")

    def click_and_wait(button, state):
        page.wait_for_function(f"!document.getElementById('{button}').disabled", timeout=60000)
        page.click("#" + button)
        page.wait_for_function(
            f"document.getElementById('job-state').textContent === '{state}'", timeout=60000)
        return page.text_content("#job-state")

    states = [click_and_wait("stop-button", "STOPPED"),
              click_and_wait("resume-button", "RUNNING"),
              click_and_wait("cancel-button", "STOPPED")]
    browser.close()

print(json.dumps({"title": title, "read": [first, second], "nodes": nodes,
                  "screenshot": [width, height], "border_pixels": border, "jobs": jobs_listed,
                  "checkpoints": checkpoints, "watermark": watermark, "states": states}))
