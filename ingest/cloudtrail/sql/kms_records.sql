/* One row per record of the trail files in `trail_lines(source_object, line)`, cut out without a JSON
   parse: CloudTrail writes a file as one minified line `{"Records":[{"eventVersion":…},…]}`, and the bytes
   `},{"eventVersion"` can only occur there between two records (inside a JSON string the quote would be
   escaped). `well_formed` is false for a line that is not such a framed line; a piece that is not valid
   JSON shows a wrong split. Either way the file is re-read by the exact parser, so a wrong split never
   reaches the lake. */
WITH pieces AS (
    SELECT
        source_object,
        -- U+FFFD (65533) in a record: left to the exact parser, which tells a real one from a replaced byte
        starts_with(line, '{"Records":[') AND ends_with(line, ']}') AND NOT contains(line, chr(65533)) AS framed,
        string_split(substr(line, 13, length(line) - 14), '},{"eventVersion"') AS parts
    FROM trail_lines
    WHERE length(line) > 0
),
cut AS (
    SELECT
        source_object,
        framed,
        len(parts) AS n,
        generate_subscripts(parts, 1) - 1 AS record_index,
        unnest(parts) AS part
    FROM pieces
)
SELECT
    source_object,
    record_index,
    CASE WHEN record_index > 0 THEN '{"eventVersion"' ELSE '' END
        || part || CASE WHEN record_index < n - 1 THEN '}' ELSE '' END AS rec,
    framed AS well_formed
FROM cut
WHERE part <> '' OR NOT framed
