"""The one operation vocabulary of `key_operations`: KMS event names and CloudHSM opcodes, named and classed.

Names not listed here still get a class in SQL (`key_operations.sql`): Get/List/Describe calls are `read`,
other KMS calls `key_lifecycle`; an unknown HSM opcode keeps a CamelCase form of its name (CN_FOO_BAR → FooBar).
"""

from __future__ import annotations

import pyarrow as pa

KMS_CLASSES: dict[str, list[str]] = {
    "crypto": [
        "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateRandom", "Sign", "Verify",
        "GenerateMac", "VerifyMac", "DeriveSharedSecret",
    ],
    "key_lifecycle": [
        "CreateKey", "EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "DeleteKey",
        "EnableKeyRotation", "DisableKeyRotation", "RotateKeyOnDemand", "RotateKey", "ImportKeyMaterial",
        "DeleteImportedKeyMaterial", "DeleteExpiredKeyMaterial", "GetParametersForImport", "ReplicateKey",
        "UpdatePrimaryRegion", "SynchronizeMultiRegionKey", "CreateAlias", "UpdateAlias", "DeleteAlias",
        "UpdateKeyDescription", "TagResource", "UntagResource",
    ],
    "key_policy": ["PutKeyPolicy"],
    "access": ["CreateGrant", "RetireGrant", "RevokeGrant"],
    "store_admin": [
        "CreateCustomKeyStore", "ConnectCustomKeyStore", "DisconnectCustomKeyStore", "DeleteCustomKeyStore",
        "UpdateCustomKeyStore",
    ],
    "read": [
        "DescribeKey", "ListKeys", "ListAliases", "ListGrants", "ListRetirableGrants", "GetKeyPolicy",
        "ListKeyPolicies", "GetKeyRotationStatus", "ListKeyRotations", "ListResourceTags", "GetPublicKey",
        "DescribeCustomKeyStores",
    ],
}  # fmt: skip

# CloudHSM opcode → (readable operation, class). Opcodes as the audit log spells them, without the hex code.
HSM_OPCODES: dict[str, tuple[str, str]] = {
    "CN_LOGIN": ("Login", "access"),
    "CN_LOGOUT": ("Logout", "access"),
    "CN_APP_FINALIZE": ("AppFinalize", "access"),
    "CN_CLOSE_SESSION": ("CloseSession", "access"),
    "CN_CREATE_USER": ("CreateUser", "user_admin"),
    "CN_CREATE_CO": ("CreateUser", "user_admin"),
    "CN_CREATE_APPLIANCE_USER": ("CreateUser", "user_admin"),
    "CN_DELETE_USER": ("DeleteUser", "user_admin"),
    "CN_CHANGE_PSWD": ("ChangePassword", "user_admin"),
    "CN_GEN_PSWD_ENC_KEY": ("GeneratePasswordEncryptionKey", "user_admin"),
    "CN_GENERATE_KEY": ("GenerateKey", "key_lifecycle"),
    "CN_GENERATE_KEY_PAIR": ("GenerateKeyPair", "key_lifecycle"),
    "CN_CREATE_OBJECT": ("CreateObject", "key_lifecycle"),
    "CN_DESTROY_OBJECT": ("DestroyKey", "key_lifecycle"),
    "CN_SET_ATTRIBUTE": ("SetAttribute", "key_lifecycle"),
    "CN_INSERT_MASKED_OBJECT_USER": ("InsertMaskedObject", "key_lifecycle"),
    "CN_EXTRACT_MASKED_OBJECT_USER": ("ExtractMaskedObject", "key_lifecycle"),
    "CN_WRAP_KEY": ("WrapKey", "crypto"),
    "CN_UNWRAP_KEY": ("UnwrapKey", "crypto"),
    "CN_NIST_AES_WRAP": ("AesWrap", "crypto"),
    "CN_NIST_AES_WRAP_NO_PAD": ("AesWrap", "crypto"),
    "CN_NIST_AES_WRAP_PAD": ("AesWrap", "crypto"),
    "CN_SHARE_OBJECT": ("ShareKey", "access"),
    "CN_INIT_TOKEN": ("InitializeHsm", "store_admin"),
    "CN_INIT_DONE": ("InitializeHsmDone", "store_admin"),
    "CN_ZEROIZE": ("Zeroize", "store_admin"),
}


def operation_names() -> pa.Table:
    """The `operation_names` table: source, name as logged, readable operation, operation class."""
    rows = [("cloudtrail", name, name, cls) for cls, names in KMS_CLASSES.items() for name in names]
    rows += [("cloudhsm", code, op, cls) for code, (op, cls) in HSM_OPCODES.items()]
    cols = ["source", "name", "operation", "operation_class"]
    return pa.table({c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(cols)})
