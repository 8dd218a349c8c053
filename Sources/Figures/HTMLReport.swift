import Foundation
import ImageIO

/// A self-contained HTML page describing one run: every link relative, no script or style from
/// the network, so the folder can be moved, zipped or opened offline. A small inline script
/// marks on `<body>` how many of the page's images loaded (`data-images="loaded/total"`), which a
/// headless browser reads to check the report.
public struct HTMLReport: Sendable {
    /// One piece of a section, in page order.
    public enum Block: Sendable {
        /// Text, escaped.
        case paragraph(String)
        /// A figure file (relative path) with its caption.
        case figure(String, caption: String)
        /// Small images side by side, each with a caption (relative paths).
        case gallery([(file: String, caption: String)])
        /// A table: a header row and rows of cells (text, escaped).
        case table(header: [String], rows: [[String]])
        /// Name-value pairs (settings, model, device).
        case facts([(String, String)])
        /// Preformatted text (the command line).
        case code(String)
        /// HTML made by the caller (escape text with `HTMLReport.escaped`, paths with `HTMLReport.link`).
        case html(String)
    }

    /// Text as HTML: &, <, >, " escaped.
    public static func escaped(_ text: String) -> String { escape(text) }
    /// A relative path for an attribute: escaped, each component percent-encoded.
    public static func link(_ path: String) -> String { attribute(path) }

    /// A titled part of the page.
    public struct Section: Sendable {
        /// The section's heading.
        public var title: String
        /// Its content, in order.
        public var blocks: [Block]
        /// A section titled `title` holding `blocks`.
        public init(_ title: String, _ blocks: [Block]) { self.title = title; self.blocks = blocks }
    }

    /// The page title (also its first heading).
    public var title: String
    /// The page's sections, in order.
    public var sections: [Section]

    /// A report titled `title` with `sections`.
    public init(title: String, sections: [Section] = []) { self.title = title; self.sections = sections }

    /// The tag that marks a page (and so its folder) as Loupe's.
    public static let generatorMeta = "<meta name=\"generator\" content=\"Loupe\">"

    /// The page.
    public func html() -> String {
        var out = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        \(Self.generatorMeta)
        <title>\(escape(title))</title>
        <style>
        body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1500px; padding: 0 16px; color: #1a1a1a; }
        h1 { font-size: 22px; } h2 { font-size: 17px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 28px; }
        figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid #eee; }
        figcaption { font-size: 13px; color: #555; margin-top: 4px; }
        .gallery { display: flex; flex-wrap: wrap; gap: 12px; } .gallery figure { margin: 0; width: 180px; }
        .gallery img { width: 180px; image-rendering: auto; }
        table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
        th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; } th { background: #f5f5f5; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 13px; white-space: pre-wrap; word-break: break-all; }
        </style>
        </head>
        <body>
        <h1>\(escape(title))</h1>

        """
        for section in sections {
            out += "<h2>\(escape(section.title))</h2>\n"
            for block in section.blocks { out += render(block) }
        }
        out += """
        <script>
        // How many images loaded, for a reader of this page in a headless browser.
        window.addEventListener("load", function () {
          var images = Array.prototype.slice.call(document.images);
          var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
          document.body.setAttribute("data-images", loaded.length + "/" + images.length);
          document.body.setAttribute("data-broken", images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
            .map(function (i) { return i.getAttribute("src"); }).join(" "));
        });
        </script>
        </body>
        </html>

        """
        return out
    }

    func render(_ block: Block) -> String {
        switch block {
        case .paragraph(let text):
            return "<p>\(escape(text))</p>\n"
        case .figure(let file, let caption) where file.lowercased().hasSuffix(".pdf"):
            return "<p><a href=\"\(attribute(file))\">\(escape(caption)) (PDF)</a></p>\n"
        case .figure(let file, let caption):
            return "<figure><a href=\"\(attribute(file))\"><img src=\"\(attribute(file))\" alt=\"\(attribute(caption))\"></a><figcaption>\(escape(caption))</figcaption></figure>\n"
        case .gallery(let items):
            return "<div class=\"gallery\">\n" + items.map { item in
                "<figure><a href=\"\(attribute(item.file))\"><img src=\"\(attribute(item.file))\" alt=\"\(attribute(item.caption))\"></a><figcaption>\(escape(item.caption))</figcaption></figure>\n"
            }.joined() + "</div>\n"
        case .table(let header, let rows):
            func cell(_ s: String, _ tag: String) -> String {
                let numeric = Double(s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: " ms", with: "").replacingOccurrences(of: " s", with: "")) != nil
                return "<\(tag)\(numeric && tag == "td" ? " class=\"num\"" : "")>\(escape(s))</\(tag)>"
            }
            return "<table>\n<tr>" + header.map { cell($0, "th") }.joined() + "</tr>\n"
                + rows.map { "<tr>" + $0.map { cell($0, "td") }.joined() + "</tr>\n" }.joined() + "</table>\n"
        case .facts(let pairs):
            return "<table>\n" + pairs.map { "<tr><th>\(escape($0.0))</th><td>\(escape($0.1))</td></tr>\n" }.joined() + "</table>\n"
        case .code(let text):
            return "<pre>\(escape(text))</pre>\n"
        case .html(let html):
            return html + "\n"
        }
    }

    /// Writes the page whole or not at all.
    public func write(to url: URL) throws {
        try writeAtomically(Data(html().utf8), to: url)
    }
}

/// Text as HTML: &, <, >, " escaped.
func escape(_ text: String) -> String {
    var out = ""
    for c in text {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}

/// A relative path inside an attribute: escaped, with each path component percent-encoded.
func attribute(_ path: String) -> String {
    let allowed = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "?#"))
    return escape(path.split(separator: "/", omittingEmptySubsequences: false)
        .map { String($0).addingPercentEncoding(withAllowedCharacters: allowed) ?? String($0) }.joined(separator: "/"))
}
