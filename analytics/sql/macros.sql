-- Macros the views share (run once at connect; context_pair() is made there from the tenants' context keys).
-- operation_class_of: the class of an operation, for names the vocabulary (operation_names) does not list.
CREATE OR REPLACE MACRO operation_class_of(source, operation, known) AS coalesce(
    known,
    CASE
        WHEN source = 'cloudhsm' THEN 'store_admin'
        WHEN regexp_matches(operation, '^(Get|List|Describe)') THEN 'read'
        ELSE 'key_lifecycle'
    END
)
