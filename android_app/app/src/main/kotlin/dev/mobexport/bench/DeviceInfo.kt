package dev.mobexport.bench

import android.content.Context
import android.os.Build
import android.os.PowerManager
import dev.mobexport.benchkit.DeviceDescription
import org.tensorflow.lite.TensorFlowLite

/** Device facts for the result record. */
object DeviceInfo {
    fun describe(): DeviceDescription = DeviceDescription(
        deviceModel = Build.MODEL,
        os = "Android",
        osVersion = "${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})",
        chip = chip(),
    )

    /** Build.SOC_MANUFACTURER + SOC_MODEL on API 31+, Build.HARDWARE (board name) before. */
    fun chip(): String {
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            val soc = "${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL}".trim()
            if (soc.isNotEmpty() && soc != "unknown unknown") {
                return soc
            }
        }
        return Build.HARDWARE
    }

    /** PowerManager's thermal status (API 29+), null before. */
    fun thermalStatus(context: Context): String? {
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.Q) {
            return null
        }
        val power = context.getSystemService(PowerManager::class.java) ?: return null
        return thermalName(power.currentThermalStatus)
    }

    /** The suffix of PowerManager.THERMAL_STATUS_* (NONE, LIGHT, ...), as in the shared example payload. */
    fun thermalName(status: Int): String = when (status) {
        PowerManager.THERMAL_STATUS_NONE -> "NONE"
        PowerManager.THERMAL_STATUS_LIGHT -> "LIGHT"
        PowerManager.THERMAL_STATUS_MODERATE -> "MODERATE"
        PowerManager.THERMAL_STATUS_SEVERE -> "SEVERE"
        PowerManager.THERMAL_STATUS_CRITICAL -> "CRITICAL"
        PowerManager.THERMAL_STATUS_EMERGENCY -> "EMERGENCY"
        PowerManager.THERMAL_STATUS_SHUTDOWN -> "SHUTDOWN"
        else -> "UNKNOWN"
    }

    /** runtime_version is the LiteRT Maven version the app was built with (e.g. 1.4.1). */
    fun runtimeVersion(): String = BuildConfig.LITERT_VERSION

    /** "app" is "<versionName> (<versionCode>)"; litert_native is the native runtime's own version string. */
    fun toolVersions(): Map<String, String> = mapOf(
        "app" to "${BuildConfig.VERSION_NAME} (${BuildConfig.VERSION_CODE})",
        "litert_native" to TensorFlowLite.runtimeVersion(),
    )
}
